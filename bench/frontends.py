"""What the front-ends add to a request: the same tiny job asked through the hosted API (v6, answered with
URLs), the OpenAI Images API (answered with the image inline as b64_json) and the AUTOMATIC1111 API
(images inline), one at a time against a real web tier and worker; the median of each and the ratio to v6.

    .venv/bin/python bench/frontends.py [--jobs 30]
"""

import argparse
import base64
import http.client
import json
import os
import statistics
import time

import common


def timed(conn, path: str, body: dict, headers: dict) -> float:
    started = time.perf_counter()
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json", **headers})
    response = conn.getresponse()
    data = response.read()
    assert response.status == 200, data[:300]
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--port", type=int, default=8768)
    args = parser.parse_args()
    os.environ["OPENAI_QUALITY_STEPS"] = f"low={common.TINY['num_inference_steps']}"  # the same one step
    key = common.setup()
    web = common.start_web(args.port, 2)
    worker = common.start_worker()
    bearer = {"Authorization": f"Bearer {key}"}
    basic = {"Authorization": "Basic " + base64.b64encode(f"user:{key}".encode()).decode()}
    size = common.TINY["width"]
    requests = {
        "hosted API, /api/v6/images/text2img": (
            "/api/v6/images/text2img",
            {"key": key, **common.TINY},
            {},
        ),
        "OpenAI, /v1/images/generations (b64_json)": (
            "/v1/images/generations",
            {"prompt": common.TINY["prompt"], "size": f"{size}x{size}", "quality": "low"},
            bearer,
        ),
        "A1111, /sdapi/v1/txt2img": (
            "/sdapi/v1/txt2img",
            {
                "prompt": common.TINY["prompt"],
                "width": size,
                "height": size,
                "steps": common.TINY["num_inference_steps"],
            },
            basic,
        ),
    }
    try:
        conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=120)
        for path, body, headers in requests.values():  # warm-up: each path once
            timed(conn, path, body, headers)
        times = {name: [] for name in requests}
        for _ in range(args.jobs):  # interleaved, so drift touches each alike
            for name, (path, body, headers) in requests.items():
                times[name].append(timed(conn, path, body, headers))
    finally:
        common.stop(web, worker)
    base = statistics.median(times[next(iter(times))])
    print(f"{args.jobs} jobs each, {size}x{size}, one at a time (median seconds per request, and against v6):")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:45s} {median * 1000:7.1f} ms  {median / base:.2f}x")


if __name__ == "__main__":
    main()
