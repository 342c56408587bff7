"""ETA accuracy: the `eta` a processing answer promises against when the job really finished.

One worker learns the timings of a few job shapes (three jobs each), then a mixed burst of jobs is
queued at once; each answer's `eta` (seconds from the request until the job is done) is compared with
the job's real finish time.

    .venv/bin/python bench/eta.py [--burst 12]
"""

import argparse
import statistics
import time

import common

SHAPES = [
    {"width": 128, "height": 128, "num_inference_steps": 20},
    {"width": 256, "height": 256, "num_inference_steps": 10},
    {"width": 192, "height": 128, "num_inference_steps": 30, "scheduler": "Heun"},
    {"width": 128, "height": 128, "num_inference_steps": 20, "samples": 2},
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--burst", type=int, default=12)
    parser.add_argument("--port", type=int, default=8769)
    args = parser.parse_args()

    key = common.setup()
    from generation.models import Job

    web = common.start_web(args.port, 2)
    worker = common.start_worker()
    try:
        conn = common.connect(args.port, key)
        for shape in SHAPES * 3:  # learn each shape's timings
            body = common.post(conn, "/api/v3/text2img", {"key": key, "prompt": "warm", **shape})
            assert body["status"] == "success", body
        time.sleep(6)  # let the finished jobs leave the workers' heartbeat records
        conn = common.connect(args.port, key)
        promises = []
        for i in range(args.burst):
            sent = time.time()
            body = common.post(
                conn,
                "/api/v3/text2img",
                {"key": key, "prompt": f"job {i}", "instant_response": "yes", **SHAPES[i % len(SHAPES)]},
            )
            promises.append((body["id"], sent, body["eta"]))
        ids = [job_id for job_id, _, _ in promises]
        while Job.objects.filter(pk__in=ids).exclude(status="success").exists():
            time.sleep(0.2)
        finished = dict(Job.objects.filter(pk__in=ids).values_list("id", "finished_at"))
    finally:
        common.stop(web, worker)

    errors = []
    print()
    print("| job | promised eta (s) | actual (s) | error |")
    print("| --- | --- | --- | --- |")
    for job_id, sent, eta in promises:
        actual = finished[job_id].timestamp() - sent
        error = (eta - actual) / actual
        errors.append(abs(error))
        print(f"| {job_id} | {eta:.2f} | {actual:.2f} | {error:+.0%} |")
    print(
        f"\nmean absolute error {statistics.mean(errors):.0%}, worst {max(errors):.0%}; "
        f"{sum(e <= 0.2 for e in errors)}/{len(errors)} within 20%"
    )


if __name__ == "__main__":
    main()
