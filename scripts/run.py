"""`make run`: Redis (started if none answers), migrations, demo model, demo account, web server, a
generation worker and a training worker (a training of minutes never holds up generation). The terminal shows one line per step, then, once the worker has run a first job, the URL, a
demo key and a curl command; the processes' own output goes to files under var/log/ (LOG_DIR). Ctrl-C
stops everything it started."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import redis_server  # noqa: E402

PYTHON = sys.executable
LOG_DIR = Path(os.environ.get("LOG_DIR", ROOT / "var" / "log"))
DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password-123"


def log_file(name: str):
    return open(LOG_DIR / f"{name}.log", "ab")


def manage(*args, env=None) -> str:
    """Run a management command with its output in var/log/setup.log; return what it printed."""
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    with open(LOG_DIR / "setup.log", "a") as log:
        log.write(result.stdout)
    if result.returncode:
        raise SystemExit(f"`manage.py {' '.join(args)}` failed:\n{result.stdout[-3000:]}")
    return result.stdout


def step(text: str):
    print(f"  {text}", flush=True)


def ensure_redis(children: list) -> str:
    """REDIS_URL when a Redis answers there; else one started on its port (a free one when the default
    6379 is taken by something else; a REDIS_URL set on purpose is kept or refused, never moved)."""
    given = os.environ.get("REDIS_URL")
    url = given or "redis://127.0.0.1:6379/0"
    if redis_server.is_reachable(url):
        step(f"Redis: using {url}")
        return url
    parsed = urlparse(url)
    if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"No Redis answers at REDIS_URL={url}")
    port = parsed.port or 6379
    if not _port_free(port):
        if given:
            raise SystemExit(f"Something other than Redis listens on port {port} of REDIS_URL={url}")
        port = redis_server.free_port()
    children.append(("Redis", redis_server.start(port, ROOT / "var" / "redis")))
    url = parsed._replace(netloc=f"127.0.0.1:{port}").geturl()
    step(f"Redis: none answered, started one at {url}")
    return url


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def wait_http(url: str, timeout: float = 120):
    """Until `url` answers 200 (for /healthz: the database, Redis and a worker that has loaded SDXL)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except Exception:
            time.sleep(0.3)
    raise SystemExit(f"No healthy answer at {url}; see {LOG_DIR}/web.log and {LOG_DIR}/worker.log")


# the workers: their log's name and the queues each serves
WORKERS = {"worker": ["high", "default", "low"], "trainer": ["training"]}


def start_worker(env, name: str) -> subprocess.Popen:
    """One RQ worker; `main` starts another whenever it dies (its jobs are recovered by the sweep). In a
    session of its own, like the web server, so that Ctrl-C reaches only this script, which stops them."""
    log = log_file(name)
    return subprocess.Popen(
        [PYTHON, "manage.py", "rqworker", *WORKERS[name]],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )


def start_web(env, port: str) -> subprocess.Popen:
    """gunicorn with uvicorn workers (config/gunicorn.py): slow clients do not hold its threads."""
    log = log_file("web")
    return subprocess.Popen(
        [PYTHON, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.asgi", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=dict(env, WEB_ACCESS_LOG=str(LOG_DIR / "access.log")),
        stdout=log,
        stderr=log,
        start_new_session=True,
    )


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)


def first_job(base: str, key: str, timeout: float = 300):
    """A first small image through the API, waited for: the worker's first job pays its one-time costs
    (the first pipeline call, the first connections), so the banner's command answers at once."""
    deadline = time.monotonic() + timeout
    body = post(base + "/api/v3/text2img", {"key": key, "prompt": "warm-up", "width": 64, "height": 64, "steps": 2})
    while body["status"] == "processing" and time.monotonic() < deadline:
        time.sleep(0.2)
        body = post(f"{base}/api/v3/fetch/{body['id']}", {"key": key})
    if body["status"] != "success":
        raise SystemExit(f"The first image failed: {body}; see {LOG_DIR}/worker.log")


def _stop(signum, frame):
    raise KeyboardInterrupt


def main():
    signal.signal(signal.SIGTERM, _stop)
    port = os.environ.get("PORT", "8000")
    children: list[tuple[str, subprocess.Popen]] = []  # (what it is, its process)
    workers: dict[str, subprocess.Popen] = {}
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    print(f"Starting the SDXL API (logs in {LOG_DIR}/)", flush=True)
    try:
        env = dict(os.environ, REDIS_URL=ensure_redis(children), DJANGO_SETTINGS_MODULE="config.settings")
        env.setdefault("UPSCALER_DEMO", "true")  # a plain resize stands in for missing upscaler .pth files
        env.setdefault("WORKER_MAX_BATCH", "4")  # compatible waiting jobs share one pipeline call
        if not env.get("SDXL_MODEL"):  # the demo model: its trainings at the size it makes images at
            env.setdefault("TRAINING_RESOLUTION", "64")
        manage("migrate", "--noinput", "-v", "0", env=env)
        manage("collectstatic", "--noinput", "-v", "0", env=env)
        step("Database: migrated")
        step(manage("build_demo_model", env=env).strip().splitlines()[-1])
        key = manage("createapikey", DEMO_EMAIL, "--name", "demo", "--password", DEMO_PASSWORD, env=env)
        key = key.strip().splitlines()[-1]
        children.append(("The web server", start_web(env, port)))
        workers = {name: start_worker(env, name) for name in WORKERS}
        base = f"http://127.0.0.1:{port}"
        step("Web server and workers: started; waiting for the worker to load the model")
        wait_http(base + "/healthz")
        first_job(base, key)
        step("Worker: ready (a first 64x64 image made)")
        print(
            f"""
  SDXL API is running at {base}/
  Demo log-in:  {DEMO_EMAIL} / {DEMO_PASSWORD}
  Demo API key: {key}

  Try it:
  curl -s -X POST {base}/api/v3/text2img -H 'Content-Type: application/json' \\
    -d '{{"key": "{key}", "prompt": "a lighthouse at dusk", "width": "256", "height": "256", "num_inference_steps": "20"}}'

  Logs: {LOG_DIR}/web.log, access.log, worker.log, trainer.log, setup.log
  Ctrl-C stops the web server, the workers{" and Redis" if len(children) > 1 else ""}.
""",
            flush=True,
        )
        while not (exited := [(name, child) for name, child in children if child.poll() is not None]):
            for name, worker in workers.items():
                if worker.poll() is not None:  # killed, out of memory: the web server stays up
                    print(f"The {name} stopped (exit code {worker.returncode}); starting a new one.", flush=True)
                    workers[name] = start_worker(env, name)
            time.sleep(0.5)
        name, child = exited[0]
        print(f"{name} exited (code {child.returncode}; see {LOG_DIR}/); stopping the rest.", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nStopping...", flush=True)
    finally:
        children += [(f"The {name}", worker) for name, worker in workers.items()]
        for _, child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for _, child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        print("Stopped.", flush=True)


if __name__ == "__main__":
    main()
