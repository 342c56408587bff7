"""Live previews: what decoding a preview from the latents costs, and what the worker's throttled
previews (one every PROGRESS_INTERVAL at most, stored as a small JPEG) cost a job.

In-process, on the demo model:

    .venv/bin/python bench/previews.py [--size 256] [--steps 30] [--rounds 8]
"""

import argparse
import statistics
import time
from types import SimpleNamespace

import common


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    common.setup()
    import torch

    from generation.inputs import storage
    from generation.runtime.predictors import JobInput
    from generation.runtime.sdxl import latent_preview
    from generation.runtime.tasks import PROGRESS_INTERVAL

    latents = torch.randn(1, 4, 128, 128)  # a 1024x1024 image's
    latent_preview(latents)
    started = time.perf_counter()
    for _ in range(100):
        latent_preview(latents)
    decode_ms = (time.perf_counter() - started) * 10
    image = latent_preview(latents)
    job = SimpleNamespace(file_prefix="bench-preview")
    started = time.perf_counter()
    for _ in range(20):
        storage.delete_names([storage.save_preview(job, image)])
    store_ms = (time.perf_counter() - started) * 50

    predictor = common.demo_predictor()
    params = JobInput(common.raw_params(width=args.size, height=args.size, steps=args.steps))

    def without(step, total, preview=None):
        pass

    class Throttled:
        """What the worker's StepMonitor does: a preview at most every PROGRESS_INTERVAL, stored."""

        def __init__(self):
            self.last, self.made = time.monotonic(), 0

        def __call__(self, step, total, preview=None):
            now = time.monotonic()
            if now - self.last >= PROGRESS_INTERVAL and preview is not None:
                self.last = now
                storage.delete_names([storage.save_preview(job, preview())])
                self.made += 1

    def every_step(step, total, preview=None):
        preview()

    predictor.predict(params, on_step=without)  # warm-up
    modes = {"no previews": lambda: without, "throttled (the worker)": Throttled, "every step": lambda: every_step}
    times, made = {name: [] for name in modes}, []
    for _ in range(args.rounds):  # the modes interleaved, so that drift in the machine's speed hits all alike
        for name, make in modes.items():
            callback = make()
            started = time.perf_counter()
            predictor.predict(params, on_step=callback)
            times[name].append(time.perf_counter() - started)
            if isinstance(callback, Throttled):
                made.append(callback.made)
    results = {name: statistics.median(values) for name, values in times.items()}

    print(f"preview of a 1024x1024 image's latents: {decode_ms:.2f} ms to decode, {store_ms:.2f} ms to store as JPEG")
    print(f"job: {args.size}x{args.size}, {args.steps} steps, median of {args.rounds} on {predictor.device}")
    base = results["no previews"]
    for name, seconds in results.items():
        print(f"  {name:<24} {seconds:7.3f} s  ({(seconds / base - 1) * 100:+.1f}%)")
    print(f"  previews stored per throttled job: {statistics.median(made):.0f}")


if __name__ == "__main__":
    main()
