"""Platform overhead per job and the web tier's acceptance rate, demo model at 64x64 and 1 step.

(a) the raw pipeline in-process (the predictor alone, as the worker calls it),
(b) end-to-end API latency through gunicorn + PostgreSQL + Redis + the RQ worker for the same work,
    and the overhead: (b) minus the median of (a);
(c) text2img requests/s the web tier accepts with instant_response, load from other processes
    (wrk when installed, else Python clients) while no worker competes for the cores.

    .venv/bin/python bench/overhead.py [--requests 200] [--seconds 10] [--web-workers 4]
        [--servers asgi,wsgi --rounds 2]   # the web tiers alternated, ratios in one run
"""

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import tempfile
import time

import common


def raw_pipeline(n):
    from generation.runtime.predictors import JobInput

    predictor = common.demo_predictor()
    for _ in range(10):
        predictor.predict(JobInput(common.raw_params()))
    times = []
    for _ in range(n):
        started = time.perf_counter()
        predictor.predict(JobInput(common.raw_params()))
        times.append(time.perf_counter() - started)
    return times


def end_to_end(port, key, n):
    conn = common.connect(port, key)
    body = {"key": key, **common.TINY}
    for _ in range(20):
        assert common.post(conn, "/api/v3/text2img", body)["status"] == "success"
    from generation.models import Job

    latencies, ids = [], []
    for _ in range(n):
        started = time.perf_counter()
        answer = common.post(conn, "/api/v3/text2img", body)
        latencies.append(time.perf_counter() - started)
        assert answer["status"] == "success", answer
        ids.append(answer["id"])
    times = dict(Job.objects.filter(pk__in=ids).values_list("id", "generation_time"))
    pipeline = dict(Job.objects.filter(pk__in=ids).values_list("id", "pipeline_time"))
    return latencies, [times[i] for i in ids], [pipeline[i] for i in ids]


def python_client(port, key, seconds, results):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = {"key": key, **common.TINY, "instant_response": "yes"}
    accepted, errors, deadline = 0, 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if common.post(conn, "/api/v3/text2img", body).get("status") == "processing":
                accepted += 1
            else:
                errors += 1
        except Exception:
            errors += 1
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    results.put((accepted, errors))


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
local accepted, other = 0, 0
response = function(status, headers, body)
  if string.find(body, '"processing"', 1, true) then accepted = accepted + 1 else other = other + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format("ACCEPTED %%d\\n", summary.requests - summary.errors.status))
  io.write(string.format("P50 %%f P99 %%f\\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def acceptance_rate(port, key, seconds, connections):
    """Requests/s answered `processing`, and how the load was made."""
    body = json.dumps({"key": key, **common.TINY, "instant_response": "yes"})
    if shutil.which("wrk"):
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(WRK_SCRIPT % body)
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{int(seconds)}s",
                "-s",
                script.name,
                f"http://127.0.0.1:{port}/api/v3/text2img",
            ],
            capture_output=True,
            text=True,
        ).stdout
        os.unlink(script.name)
        rate = float(next(line for line in out.splitlines() if "Requests/sec" in line).split()[-1])
        latency = next(line for line in out.splitlines() if line.startswith("P50"))
        return rate, f"wrk, 1 thread, {connections} connections; latency ms {latency}"
    results = multiprocessing.Queue()
    clients = [
        multiprocessing.Process(target=python_client, args=(port, key, seconds, results)) for _ in range(connections)
    ]
    for client in clients:
        client.start()
    counts = [results.get() for _ in clients]
    for client in clients:
        client.join()
    return sum(
        c for c, _ in counts
    ) / seconds, f"{connections} Python client processes, {sum(e for _, e in counts)} errors"


def one_round(args, key, server, raw_p50):
    """(b) and (c) through `server` ("asgi": as `make run` serves; "wsgi": gunicorn's threads)."""
    web = common.start_web(args.port, args.web_workers, server=server)
    worker = common.start_worker()
    try:
        latencies, generation, pipeline = end_to_end(args.port, key, args.requests)
        common.stop(worker)  # in production it runs on a GPU machine, not on the web tier's cores
        rate, how = acceptance_rate(args.port, key, args.seconds, args.connections)
    finally:
        common.stop(web, worker)
        common.drain()
    print(f"\n[{server}]")
    common.report("(b) end-to-end API latency", latencies)
    common.report("    generationTime on the worker", generation)
    common.report("    of which the pipeline, on the worker", pipeline)
    common.report("    overhead per job: (b) - p50(a)", [t - raw_p50 for t in latencies])
    common.report("    overhead per job: (b) - its own pipeline time", [t - p for t, p in zip(latencies, pipeline)])
    print(
        f"(c) text2img accepted with instant_response: {rate:.0f} requests/s "
        f"({args.web_workers} gunicorn workers; {how})"
    )
    print(
        f"ratios: end-to-end p50 / raw p50 {common.percentile(latencies, 50) / raw_p50:.2f}x; "
        f"worker pipeline p50 / raw p50 {common.percentile(pipeline, 50) / raw_p50:.2f}x"
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--web-workers", type=int, default=4)
    parser.add_argument("--servers", default="asgi", help='comma-separated, alternated: "asgi,wsgi"')
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()

    key = common.setup()
    raw = raw_pipeline(args.requests)
    p50_raw = statistics.median(raw)
    print()
    common.report("(a) raw pipeline, in-process", raw)
    for _ in range(args.rounds):
        for server in args.servers.split(","):
            one_round(args, key, server, p50_raw)


if __name__ == "__main__":
    main()
