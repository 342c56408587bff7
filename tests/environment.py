"""Decide, before Django starts, which database and Redis the tests use; print what was chosen."""

import atexit
import os
import sys
from pathlib import Path

from config import redis_server

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
VAR = Path(__file__).resolve().parent.parent / "var"


def _postgres_reachable(url: str) -> bool:
    try:
        import psycopg

        psycopg.connect(url.replace("postgres://", "postgresql://", 1), connect_timeout=2).close()
        return True
    except Exception:
        return False


def prepare():
    if os.environ.get("SDXL_TEST_ENV_READY"):
        return
    os.environ["SDXL_TEST_ENV_READY"] = "1"
    if "DATABASE_URL" not in os.environ:
        if _postgres_reachable(DEFAULT_DATABASE_URL):
            os.environ["DATABASE_URL"] = DEFAULT_DATABASE_URL
        else:
            os.environ["DATABASE_URL"] = f"sqlite:///{VAR / 'db.sqlite3'}"
            print("tests: PostgreSQL not reachable, using SQLite (postgres_only tests are skipped)", file=sys.stderr)
    redis_url = os.environ.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    if not redis_server.is_reachable(redis_url):
        port = redis_server.free_port()
        process = redis_server.start(port, VAR / "test-redis")
        atexit.register(process.terminate)
        os.environ["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        print(f"tests: Redis not reachable at {redis_url}, started an embedded one on port {port}", file=sys.stderr)
    os.environ.setdefault("MEDIA_ROOT", str(VAR / "test-media"))
    # A request waits for its job's event, however long the job takes here: a loaded machine is slow,
    # not wrong. (Tests that want "processing" ask for instant_response.)
    os.environ.setdefault("GENERATION_WAIT_SECONDS", "300")
    os.environ.setdefault("CONN_MAX_AGE", "0")  # the ASGI test server runs each request in a thread of its own
    # Tests serve input images and receive webhooks on 127.0.0.1; the SSRF tests switch this off.
    os.environ.setdefault("SAFE_HTTP_ALLOWED_NETWORKS", "127.0.0.1/32")
    os.environ.setdefault("WEBHOOK_RETRY_DELAYS", "0.2,0.4,0.8")
    os.environ.setdefault("API_REQUESTS_PER_MINUTE", "100000")
    os.environ.setdefault("API_POLL_REQUESTS_PER_MINUTE", "100000")
    os.environ.setdefault("FREE_PLAN_CREDITS", "1000")  # test accounts make many jobs
    # a killed worker is noticed within ~2 s, and swept up within ~2 s more
    os.environ.setdefault("WORKER_HEARTBEAT_INTERVAL", "0.5")
    os.environ.setdefault("WORKER_MAINTENANCE_INTERVAL", "2")
    os.environ.setdefault("METRICS_TOKEN", "test-metrics-token")
    os.environ.setdefault("UPSCALER_DEMO", "true")  # no official upscaler weights here
    os.environ.setdefault("UPSCALER_DIR", str(VAR / "test-upscalers"))
