"""Batching of compatible jobs (WORKER_MAX_BATCH): what it costs a job when there is nothing to batch,
and what one pipeline call for several jobs saves against running them one by one.

In-process, on the demo model (CPU here; on a GPU the same command measures the GPU):

    .venv/bin/python bench/batching.py [--size 256] [--steps 20] [--batch 4] [--rounds 5]
"""

import argparse
import statistics
import time

import common


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    common.setup()
    from generation.queueing import queue
    from generation.runtime.predictors import JobInput

    # 1. nothing to batch: the only extra work is one look at the head of the job's queue
    started = time.perf_counter()
    for _ in range(200):
        queue.waiting_ids("default", 4 * args.batch)
    look_ms = (time.perf_counter() - started) * 1000 / 200

    # 2. `batch` compatible jobs: one call against one call each (interleaved rounds)
    predictor = common.demo_predictor()
    jobs = [
        JobInput(
            common.raw_params(
                prompt=f"a lighthouse, view {i}", width=args.size, height=args.size, steps=args.steps, seed=i
            )
        )
        for i in range(args.batch)
    ]
    predictor.predict(jobs[0])  # warm-up
    one_by_one, together = [], []
    for _ in range(args.rounds):
        started = time.perf_counter()
        for job in jobs:
            predictor.predict(job)
        one_by_one.append(time.perf_counter() - started)
        started = time.perf_counter()
        predictor.predict_batch(jobs)
        together.append(time.perf_counter() - started)
    alone, batched = statistics.median(one_by_one), statistics.median(together)
    print(f"nothing to batch: {look_ms:.2f} ms per job (one look at the queue's head)")
    print(
        f"{args.batch} jobs of {args.size}x{args.size}, {args.steps} steps on {predictor.device}, median of {args.rounds}:"
    )
    print(f"  one call each  {alone:7.3f} s  ({args.batch / alone:.2f} images/s)")
    print(f"  one batch      {batched:7.3f} s  ({args.batch / batched:.2f} images/s, {alone / batched:.2f}x)")


if __name__ == "__main__":
    main()
