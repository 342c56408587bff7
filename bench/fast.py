"""Few-step models: a 4-step guidance-0 image (the model's own sampling: SDXL-Lightning's preset on the
checkpoint) against a 30-step guidance-7 image of the same model, end to end through the API, in one run;
and the platform's overhead (latency less the worker's model time) as a share of the 4-step image.

    .venv/bin/python bench/fast.py [--size 256] [--images 10]
"""

import argparse
import statistics
import time

import common

PORT = 8795


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--images", type=int, default=10)
    args = parser.parse_args()
    key = common.setup()
    from generation.inputs import library
    from generation.kinds.sampling import PRESETS
    from generation.models import Job

    web = common.start_web(PORT, workers=1)
    worker = common.start_worker()
    conn = common.connect(PORT, key)
    checkpoint = library.default_checkpoint()

    def run(count: int, **fields) -> tuple[list[float], list[float]]:
        """(latencies, the worker's model seconds) of `count` images, after two to warm up."""
        body = {"key": key, "prompt": "a lighthouse", "width": args.size, "height": args.size, **fields}
        for seed in range(2):
            assert common.post(conn, "/api/v6/images/text2img", {**body, "seed": seed})["status"] == "success"
        latencies, ids = [], []
        for seed in range(count):
            started = time.perf_counter()
            answer = common.post(conn, "/api/v6/images/text2img", {**body, "seed": seed})
            latencies.append(time.perf_counter() - started)
            assert answer["status"] == "success", answer
            ids.append(answer["id"])
        model = dict(Job.objects.filter(pk__in=ids).values_list("id", "generation_time"))
        return latencies, [model[i] for i in ids]

    try:
        checkpoint.sampling = PRESETS["lightning"].to_dict()  # read by the web tier at each request
        checkpoint.save()
        fast, fast_model = run(args.images)
        steps = Job.objects.order_by("-id").first().parameters
        assert (steps.steps, steps.guidance_scale) == (4, 0.0), (steps.steps, steps.guidance_scale)
        checkpoint.sampling = {}
        checkpoint.save()
        slow, slow_model = run(args.images, num_inference_steps=30, guidance_scale=7)
    finally:
        checkpoint.sampling = {}
        checkpoint.save()
        common.drain()
        common.stop(web, worker)
    fast_p50, slow_p50 = statistics.median(fast), statistics.median(slow)
    overhead = fast_p50 - statistics.median(fast_model)
    print(f"\n{args.size}x{args.size}, the demo model, this machine, {args.images} images each, end to end (p50):")
    print(f"- 4 steps, guidance 0 (Lightning's preset): {fast_p50:.3f} s (model {statistics.median(fast_model):.3f} s)")
    print(f"- 30 steps, guidance 7: {slow_p50:.3f} s (model {statistics.median(slow_model):.3f} s)")
    print(f"- ratio {fast_p50 / slow_p50:.3f}; the platform's overhead {overhead:.3f} s, ", end="")
    print(f"{overhead / fast_p50:.0%} of the 4-step image")


if __name__ == "__main__":
    main()
