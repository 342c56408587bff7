"""What the benchmarks share: the same PostgreSQL/Redis choice as the tests (a separate Redis database),
a bench account whose plan never limits it, and the real web server and worker as subprocesses."""

import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from tests import environment  # noqa: E402  (PostgreSQL/Redis when reachable, like the tests)

TINY = {"prompt": "a lighthouse", "width": 64, "height": 64, "num_inference_steps": 1, "seed": 1}


def _bench_database(url: str) -> str:
    """A `bench` database beside the tests' one on PostgreSQL, emptied for every run."""
    if not url.startswith("postgres"):
        return url
    import psycopg

    server = url.replace("postgres://", "postgresql://", 1).rsplit("/", 1)[0]
    with psycopg.connect(server + "/postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS bench WITH (FORCE)")
        conn.execute("CREATE DATABASE bench")
    return url.rsplit("/", 1)[0] + "/bench"


def setup() -> str:
    """Django against an empty bench database and Redis db 14, with production worker intervals;
    returns a key of an unlimited bench account."""
    os.environ.setdefault("GENERATION_WAIT_SECONDS", "30")
    os.environ.setdefault("WORKER_HEARTBEAT_INTERVAL", "5")
    os.environ.setdefault("WORKER_MAINTENANCE_INTERVAL", "30")
    environment.prepare()
    os.environ["DATABASE_URL"] = _bench_database(os.environ["DATABASE_URL"])
    os.environ["REDIS_URL"] = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/14"
    import django

    django.setup()
    import django_rq
    from django.core.management import call_command

    from accounts.keys import create_api_key
    from accounts.models import User
    from billing import credits
    from billing.models import Account, Plan

    call_command("migrate", "--noinput", verbosity=0)
    django_rq.get_connection("default").flushdb()
    plan, _ = Plan.objects.update_or_create(
        slug="bench",
        defaults={
            "name": "Bench",
            "monthly_credits": 0,
            "max_queued_jobs": 10**6,
            "requests_per_minute": 10**8,
            "priority": "default",
            "is_public": False,
        },
    )
    user, _ = User.objects.get_or_create(email="bench@example.com")
    account = credits.account_for(user)
    Account.objects.filter(pk=account.pk).update(plan=plan)
    credits.grant(account, 10**8, reason="bench")
    _, key = create_api_key(user, name="bench")
    print(
        f"machine: {os.cpu_count()} cores; database: {os.environ['DATABASE_URL'].split('://')[0]}; "
        f"redis: {os.environ['REDIS_URL']}"
    )
    return key


def start_web(port: int, workers: int = 2, server: str = "asgi") -> subprocess.Popen:
    """The web tier as `make run` serves it (gunicorn with uvicorn workers, config/gunicorn.py), or
    `server="wsgi"`: gunicorn's threads, 8 per process, as it was served before, to compare."""
    if server == "asgi":
        command = ["-c", "config/gunicorn.py", "config.asgi"]
    else:
        command = ["config.wsgi", "--worker-class", "gthread", "--threads", "8"]
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", *command, "--workers", str(workers), "--bind", f"127.0.0.1:{port}"]
        + ["--log-level", "warning"],
        cwd=ROOT,
        env=dict(os.environ),
    )


def start_worker(*queues, **env) -> subprocess.Popen:
    """A real worker process, returned once it has loaded the model and is taking jobs."""
    from generation.queueing import liveness

    before = set(liveness.live_workers())
    process = subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", *(queues or ("high", "default", "low"))],
        cwd=ROOT,
        env=dict(os.environ, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not set(liveness.live_workers()) - before:
        if process.poll() is not None:
            raise RuntimeError("the worker exited")
        time.sleep(0.2)
    return process


def children(pid: int) -> list[int]:
    """The processes `pid` started (gunicorn's workers under its master), from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry))
    return found


def drain():
    """Drop every job still queued (an acceptance test leaves thousands), so the next round starts empty."""
    import django_rq

    from generation.models import Job
    from generation.queueing import queue

    Job.objects.filter(status__in=["queued", "running"]).update(status="canceled", error="bench: drained")
    for name in ("high", "default", "low"):
        django_rq.get_queue(name).empty()
    queue.reset_backlog({})


def stop(*processes):
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def post(conn: http.client.HTTPConnection, path: str, body: dict) -> dict:
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    return json.loads(conn.getresponse().read())


def connect(port: int, key: str, timeout: float = 120) -> http.client.HTTPConnection:
    """A keep-alive connection once the server answers the API."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            post(conn, "/api/v3/system_load", {"key": key})
            return conn
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def report(name, seconds):
    ms = [s * 1000 for s in seconds]
    print(f"{name:<40} p50 {percentile(ms, 50):8.2f} ms   p95 {percentile(ms, 95):8.2f} ms   (n={len(ms)})")


def raw_params(**overrides):
    """Predictor parameters for the same work as TINY (Text2ImgParams)."""
    from generation.kinds.text2img import Text2ImgParams

    return Text2ImgParams(**{"prompt": TINY["prompt"], "width": 64, "height": 64, "steps": 1, "seed": 1, **overrides})


def demo_predictor():
    """The SDXL predictor on SDXL_MODEL (the demo model by default), set up as a worker sets it up."""
    from django.conf import settings

    from generation.runtime.sdxl import SDXLPredictor

    predictor = SDXLPredictor(device=settings.SDXL_DEVICE)
    predictor.setup()
    return predictor
