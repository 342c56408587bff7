"""Platform overhead per job and web-tier acceptance rate, with the demo model at 64x64 and 1 step.

(a) raw pipeline time in-process (the predictor alone),
(b) end-to-end API latency through gunicorn + Redis + the RQ worker for the same work,
(c) text2img requests/s the web tier accepts with instant_response (load from a second process).

    .venv/bin/python bench/overhead.py [--requests 200] [--seconds 10] [--concurrency 16]
"""

import argparse
import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from tests import environment  # noqa: E402  (PostgreSQL/Redis when reachable, like the tests)

BODY = {"prompt": "a lighthouse", "width": 64, "height": 64, "num_inference_steps": 1, "seed": 1}


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def summary(name, seconds):
    ms = [s * 1000 for s in seconds]
    print(f"{name:<34} p50 {pct(ms, 50):8.2f} ms   p95 {pct(ms, 95):8.2f} ms   (n={len(ms)})")


def raw_pipeline(n):
    from generation.predictor import SDXLPredictor

    predictor = SDXLPredictor()
    predictor.load()
    params = {"prompt": BODY["prompt"], "negative_prompt": "", "width": 64, "height": 64, "samples": 1, "steps": 1,
              "guidance_scale": 7.5, "seed": 1, "scheduler": "UniPCMultistepScheduler", "scheduler_options": {}}
    for _ in range(5):
        predictor.run("text2img", params)
    times = []
    for _ in range(n):
        started = time.perf_counter()
        predictor.run("text2img", params)
        times.append(time.perf_counter() - started)
    return times


def post(conn, key, body):
    conn.request("POST", "/api/v3/text2img", json.dumps({"key": key, **body}), {"Content-Type": "application/json"})
    response = conn.getresponse()
    return json.loads(response.read())


def load_client(port, key, seconds, result_queue):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = {**BODY, "instant_response": "yes"}
    count, errors, deadline = 0, 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if post(conn, key, body).get("status") == "processing":
                count += 1
            else:
                errors += 1
        except Exception:
            errors += 1
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    result_queue.put((count, errors))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--web-workers", type=int, default=4)
    args = parser.parse_args()

    environment.prepare()
    if os.environ["DATABASE_URL"].startswith("postgres"):
        os.environ["DATABASE_URL"] = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/test"
    os.environ["REDIS_URL"] = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/14"
    import django

    django.setup()
    import django_rq
    from django.core.management import call_command

    from accounts.keys import create_api_key
    from accounts.models import User

    call_command("migrate", "--noinput", verbosity=0)
    django_rq.get_connection("default").flushdb()
    user, _ = User.objects.get_or_create(email="bench@example.com")
    _, key = create_api_key(user, name="bench")
    print(f"database: {os.environ['DATABASE_URL'].split('://')[0]}, redis: {os.environ['REDIS_URL']}, "
          f"cores: {os.cpu_count()}")

    raw = raw_pipeline(args.requests)

    env = dict(os.environ, GENERATION_WAIT_SECONDS="30")
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{args.port}", "--workers",
         str(args.web_workers), "--worker-class", "gthread", "--threads", "4", "--log-level", "warning"],
        cwd=ROOT, env=env,
    )
    worker = subprocess.Popen([sys.executable, "manage.py", "rqworker", "default"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        conn = None
        for _ in range(100):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
                post(conn, key, BODY)
                break
            except OSError:
                time.sleep(0.2)
        for _ in range(10):
            post(conn, key, BODY)
        e2e, generation = [], []
        for _ in range(args.requests):
            started = time.perf_counter()
            body = post(conn, key, BODY)
            e2e.append(time.perf_counter() - started)
            assert body["status"] == "success", body
            generation.append(body["generationTime"])
        p50_raw = statistics.median(raw)

        # (c) acceptance rate with instant_response, from other processes. The worker is stopped first:
        # in production it runs on a GPU machine, not on the web tier's cores.
        worker.terminate()
        worker.wait(timeout=20)
        results = multiprocessing.Queue()
        clients = [multiprocessing.Process(target=load_client, args=(args.port, key, args.seconds, results))
                   for _ in range(args.concurrency)]
        for client in clients:
            client.start()
        counts = [results.get() for _ in clients]
        for client in clients:
            client.join()
        accepted = sum(c for c, _ in counts)
        errors = sum(e for _, e in counts)
    finally:
        for process in (web, worker):
            process.terminate()
            process.wait(timeout=20)

    print()
    summary("(a) raw pipeline, in-process", raw)
    summary("(b) end-to-end API latency", e2e)
    summary("    generationTime on the worker", generation)
    summary("    overhead (b - median a)", [t - p50_raw for t in e2e])
    print(f"(c) accepted text2img with instant_response: {accepted / args.seconds:.0f} requests/s "
          f"({args.concurrency} client processes, {args.web_workers} gunicorn workers, {errors} errors)")


if __name__ == "__main__":
    main()
