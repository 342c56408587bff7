"""Worker throughput against the bare pipeline, in one run: rounds of K generations called directly on
the pipeline in this process, then the same K queued as jobs and run by the real worker process
(`manage.py rqworker`), alternating so that both see the same machine (a shared 2-core VM drifts by
10% and more over minutes). The worker is idle while the bare pipeline runs, and the other way round.

    .venv/bin/python bench/throughput.py [--rounds 3] [--per-round 4] [--size 512] [--steps 20]

Also measures whether batching identical jobs into one pipeline call is faster (samples=4 in one call
against 4 calls of one image), which decides whether the worker should batch them.
"""

import argparse
import statistics
import time
from dataclasses import replace

import common


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-round", type=int, default=4)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    common.setup()
    from accounts.models import User
    from generation.lifecycle import jobs
    from generation.models import Job
    from generation.runtime.predictors import JobInput

    user = User.objects.get(email="bench@example.com")
    params = common.raw_params(width=args.size, height=args.size, steps=args.steps, output_format="png")
    predictor = common.demo_predictor()
    predictor.predict(JobInput(params))
    worker = common.start_worker("default")

    def through_worker(seeds):
        ids = [
            jobs.submit(user=user, params=replace(params, seed=seed), base_url="http://bench", queue_name="default").id
            for seed in seeds
        ]
        while Job.objects.filter(pk__in=ids).exclude(status__in=["success", "failed"]).exists():
            time.sleep(0.05)
        done = list(Job.objects.filter(pk__in=ids).order_by("started_at"))
        assert all(job.status == "success" for job in done)
        # first start to last finish: every per-job cost on the worker (dequeue, bookkeeping, saving)
        return (done[-1].finished_at - done[0].started_at).total_seconds(), done

    try:
        through_worker([0])  # the worker's first job (its warm-up)
        bare_total = worker_total = 0.0
        gaps = []
        for round_ in range(args.rounds):
            seeds = range(round_ * args.per_round, (round_ + 1) * args.per_round)
            started = time.perf_counter()
            for seed in seeds:
                predictor.predict(JobInput(replace(params, seed=seed)))
            bare_total += time.perf_counter() - started
            seconds, done = through_worker(seeds)
            worker_total += seconds
            gaps += [(b.started_at - a.finished_at).total_seconds() for a, b in zip(done, done[1:])]
        single = batched = 0.0
        for _ in range(2):
            started = time.perf_counter()
            for seed in range(4):
                predictor.predict(JobInput(replace(params, seed=seed)))
            single += time.perf_counter() - started
            started = time.perf_counter()
            predictor.predict(JobInput(replace(params, samples=4)))
            batched += time.perf_counter() - started
    finally:
        common.stop(worker)

    n = args.rounds * args.per_round
    print()
    print(
        f"{n} jobs of {args.size}x{args.size}, {args.steps} steps (demo model, CPU), {args.rounds} alternating rounds"
    )
    print(f"bare pipeline:   {bare_total:8.2f} s  ({n / bare_total:.3f} images/s)")
    print(f"through worker:  {worker_total:8.2f} s  ({n / worker_total:.3f} images/s)")
    print(f"ratio (worker throughput / bare): {bare_total / worker_total:.3f}")
    print(f"worker time between one job's end and the next one's start: p50 {statistics.median(gaps) * 1000:.1f} ms")
    print(
        f"batching: 4 single calls {single / 2:.2f} s, one call of 4 {batched / 2:.2f} s -> "
        f"{'faster' if batched < single * 0.97 else 'not faster'} ({single / batched:.2f}x)"
    )


if __name__ == "__main__":
    main()
