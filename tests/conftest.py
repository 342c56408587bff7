"""Shared fixtures: a live HTTP server, a real RQ worker process with the demo SDXL, accounts with keys."""

import io
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import django_rq
import pytest
import requests
from django.conf import settings
from django.db import connection
from rq import Worker

from accounts.keys import create_api_key
from accounts.models import User
from billing.models import Plan
from generation.infra import images, redis_client
from generation.lifecycle import jobs
from generation.models import Job
from generation.queueing import liveness, queue
from generation.web import waiting
from tests.asgi_server import AsgiServer
from tests.http_server import LocalServer, Route
from tests.make_run import MakeRun
from tests.stripe_server import FakeStripe

ROOT = Path(__file__).resolve().parent.parent
ON_POSTGRES = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


POSTGRES_SKIP = "needs PostgreSQL; this run uses SQLite"


def pytest_collection_modifyitems(config, items):
    if ON_POSTGRES:
        return
    skip = pytest.mark.skip(reason=POSTGRES_SKIP)
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    """Say it loudly when PostgreSQL-only tests did not run (`.ci/run` fails on it)."""
    skipped = [report for report in terminalreporter.stats.get("skipped", []) if POSTGRES_SKIP in str(report.longrepr)]
    if skipped:
        terminalreporter.section("NOT TESTED", sep="!", red=True, bold=True)
        terminalreporter.write_line(
            f"{len(skipped)} PostgreSQL-only tests were skipped (running a job cancelled, in a batch, live "
            "progress, previews, the credit race, waiting without a connection...): this run used SQLite. "
            "Start PostgreSQL (see the README) to run them.",
            red=True,
            bold=True,
        )


def _database_url() -> str:
    db = connection.settings_dict
    if not ON_POSTGRES:
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def worker_environment(**overrides) -> dict:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings", DATABASE_URL=_database_url())
    env.pop("DB_POOL", None)  # the web tier's pool (config/asgi.py set it in this process), not a worker's
    env.update(overrides)
    return env


def start_worker(log_name="worker", queues=settings.GENERATION_QUEUES, **env_overrides) -> subprocess.Popen:
    """Start `manage.py rqworker` as a real process and wait until it has loaded SDXL and registered."""
    log = open(ROOT / "var" / f"test-{log_name}.log", "ab")
    connection_ = django_rq.get_connection("default")
    before = Worker.count(connection=connection_)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", *queues, "--name", f"{log_name}-{os.getpid()}-{time.time_ns()}"],
        cwd=ROOT,
        env=worker_environment(**env_overrides),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while Worker.count(connection=connection_) <= before:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker did not start; see var/test-{log_name}.log")
        time.sleep(0.1)
    return process


def _is_stopped(pid: int) -> bool:
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state in ("T", "t")


def pause(process: subprocess.Popen):
    """Stop the process (SIGSTOP) and return once it is stopped: whatever it runs waits for the test.
    A paused worker is not a dead one: its heartbeat key is kept until its next beat after `resume`, so
    that no sweep (a fetch of its job, say) takes its job away meanwhile."""
    for name, record in liveness.live_workers().items():
        if record.get("pid") == process.pid:
            redis_client.connection().expire(liveness.KEY.format(name), 600)
    os.kill(process.pid, signal.SIGSTOP)
    while not _is_stopped(process.pid):
        time.sleep(0.001)


def kill(process: subprocess.Popen):
    """SIGKILL, as the out-of-memory killer sends it. The heartbeat `pause` held for a paused process
    lapses from now, as any dead worker's does."""
    names = [name for name, record in liveness.live_workers().items() if record.get("pid") == process.pid]
    process.send_signal(signal.SIGKILL)
    process.wait()
    for name in names:
        redis_client.connection().expire(liveness.KEY.format(name), liveness.ttl())


def resume(process: subprocess.Popen):
    if process.poll() is None:  # not killed meanwhile
        os.kill(process.pid, signal.SIGCONT)


@contextmanager
def paused(process: subprocess.Popen):
    """The process stopped for the block, so that a test decides when a job's steps run, on any machine."""
    pause(process)
    try:
        yield
    finally:
        resume(process)


def step_until(process: subprocess.Popen, observe, done, key=None, gap: float = 0.6, timeout: float = 60) -> list:
    """Let a paused worker run in short slices until `done(observations)`; return the observations.

    Each slice follows a gap longer than the worker's progress-write interval, so the first denoising step
    of a slice writes its progress. A slice starts at 1 ms, doubles while nothing changes (`key` of an
    observation says what counts) and starts again at 1 ms after a change, so a slice runs only a step or
    two past the state the test waits for, on a fast GPU box and on a slow CPU alike."""
    key = key or (lambda observation: observation)
    observations, length = [observe()], 0.001
    deadline = time.monotonic() + timeout
    while not done(observations):
        if time.monotonic() > deadline:
            raise AssertionError(f"the worker never got there: {observations[-3:]}")
        time.sleep(gap)
        resume(process)
        time.sleep(length)
        pause(process)
        observations.append(observe())
        length = min(length * 2, 0.5) if key(observations[-1]) == key(observations[-2]) else 0.001
    return observations


class WorkerLog:
    """What a worker started with `start_worker(log_name)` writes from now on (its log file is appended to)."""

    def __init__(self, log_name: str = "worker"):
        self.path = ROOT / "var" / f"test-{log_name}.log"
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def text(self) -> str:
        with open(self.path, "rb") as log:
            log.seek(self.offset)
            return log.read().decode(errors="replace")

    def says(self, words: str) -> bool:
        return words in self.text()


def waiters(job_id: int) -> int:
    """Requests and streams of the in-process web tier waiting on the job's events (generation/web/waiting.py)."""
    return sum(len(hub.inboxes.get(queue.job_channel(job_id), ())) for hub in waiting._events.values())


def stop_worker(process: subprocess.Popen):
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def live_server(django_db_setup, django_db_blocker):
    """The ASGI web tier in this process (tests/asgi_server.py), in place of pytest-django's WSGI one."""
    server = AsgiServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def make_run(tmp_path_factory):
    """`make run` started once for the session, as a newcomer starts it (docs/api.md's examples and
    tests/test_run.py use it)."""
    running = MakeRun(tmp_path_factory.mktemp("make-run"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def redis_connection():
    conn = django_rq.get_connection("default")
    conn.flushdb()
    return conn


@pytest.fixture(autouse=True)
def fresh_backlog():
    """Each test leaves empty side queues and no backlog, as it leaves an empty database."""
    yield
    connection_ = redis_client.connection()
    for name in ("parked", "isolated"):
        connection_.delete(queue.queue_key(name))
    connection_.delete(queue.BACKLOG_KEY)


@pytest.fixture(scope="session")
def worker(django_db_setup, django_db_blocker, redis_connection):
    (ROOT / "var").mkdir(exist_ok=True)
    process = start_worker()
    yield process
    stop_worker(process)


@pytest.fixture
def spare_queue(worker):
    """The "isolated" queue, served only by the workers a test starts; emptied afterwards."""
    queue = django_rq.get_queue("isolated")
    queue.empty()
    yield queue
    queue.empty()


class Api:
    """A client of the v3 API over real HTTP."""

    def __init__(self, base_url: str, key: str | None):
        self.base_url = base_url.rstrip("/")
        self.key = key

    def post(self, path: str, body: dict | None = None, **kwargs) -> dict:
        sent = {"key": self.key, **(body or {})} if self.key else dict(body or {})
        response = requests.post(
            self.base_url + path, json=sent, timeout=settings.GENERATION_WAIT_SECONDS + 30, **kwargs
        )
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("application/json")
        return response.json()

    def without_key(self) -> "Api":
        """The same client, sending no key in the body (for keys in headers)."""
        return Api(self.base_url, None)

    def post_raw(self, path: str, **kwargs) -> requests.Response:
        return requests.post(self.base_url + path, timeout=settings.GENERATION_WAIT_SECONDS + 30, **kwargs)

    def wait_for(self, job_id: int, timeout: float = 300) -> dict:
        """Poll fetch until the job is no longer processing (or `timeout` passes: then it says processing)."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.post(f"/api/v3/fetch/{job_id}")
            if body["status"] != "processing" or time.monotonic() > deadline:
                return body
            time.sleep(0.1)


def make_account(email: str) -> tuple[User, str]:
    user = User.objects.create_user(email=email, password="correct horse battery")
    _, raw_key = create_api_key(user, name="test")
    return user, raw_key


def settle_jobs(timeout: float = 60):
    """Cancel what a test left queued or running and wait until every worker is idle, so that the
    database flush after the test never races a job's last writes (a deadlock in PostgreSQL)."""
    for job in Job.objects.filter(status__in=jobs.UNFINISHED):
        jobs.cancel(job)
    connection_ = django_rq.get_connection("default")
    deadline = time.monotonic() + timeout

    def busy() -> bool:
        alive = liveness.live_workers()  # a worker killed by a test stays registered with RQ as busy
        return any(w.name in alive and w.get_state() == "busy" for w in Worker.all(connection=connection_))

    while busy():
        if time.monotonic() > deadline:
            raise RuntimeError("a worker stayed busy after its test")
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def settled_jobs(request):
    """A test on the live database (transactional_db) ends with settle_jobs(), before the flush: its
    database fixture is set up from here, so that it is torn down after this."""
    if "transactional_db" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("transactional_db")
    yield
    settle_jobs()


@pytest.fixture
def account(transactional_db):
    return make_account("alice@example.com")


@pytest.fixture
def api(live_server, worker, account) -> Api:
    return Api(live_server.url, account[1])


def download(url: str) -> bytes:
    response = requests.get(url, timeout=30)
    assert response.status_code == 200, url
    return response.content


@pytest.fixture
def http_server():
    server = LocalServer()
    yield server
    server.stop()


def image_source(image, field: str = "init_image") -> images.ImageSource:
    """A PIL image as a request's input image (PNG), as jobs.submit takes one."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return images.inspect(images.ImageSource(field), buffer.getvalue())


def png_bytes(size=(64, 64), color=(200, 40, 40), mode="RGB") -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def image_url(http_server):
    """URL of a 64x64 PNG on the local server."""
    http_server.routes["/cat.png"] = Route(body=png_bytes(), headers={"Content-Type": "image/png"})
    return f"{http_server.url}/cat.png"


@pytest.fixture
def stripe_server(live_server, settings):
    """A local stand-in for Stripe, with our settings pointing at it and its webhooks at our endpoint."""
    server = FakeStripe("whsec_test_secret")
    server.webhook_url = live_server.url + "/billing/stripe/webhook/"
    settings.STRIPE_SECRET_KEY = "sk_test_local"
    settings.STRIPE_API_BASE = server.url
    settings.STRIPE_WEBHOOK_SECRET = server.webhook_secret
    yield server
    server.stop()


@pytest.fixture
def plans(transactional_db):
    return {
        "pro": Plan.objects.create(
            slug="pro",
            name="Pro",
            monthly_credits=5000,
            stripe_price_id="price_pro",
            priority="high",
            max_queued_jobs=20,
            price_label="$20/month",
        ),
        "studio": Plan.objects.create(
            slug="studio",
            name="Studio",
            monthly_credits=20000,
            stripe_price_id="price_studio",
            priority="high",
            price_label="$60/month",
        ),
    }
