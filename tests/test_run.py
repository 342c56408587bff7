"""`make run` (scripts/run.py): a worker that dies is started again, and the web server stays up."""

import json
import os
import signal
import subprocess
import sys
import time

import redis
import requests

from config import redis_server
from tests.conftest import ROOT


def _live_pids(client) -> set[int]:
    pids = set()
    for name in client.smembers("sdxl:workers"):
        record = client.get(f"sdxl:worker:{name.decode()}")
        if record:
            pids.add(json.loads(record)["pid"])
    return pids


def test_a_killed_worker_is_started_again_and_the_web_server_stays_up(tmp_path):
    port = redis_server.free_port()
    redis_url = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/12"
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    env = dict(
        os.environ,
        PORT=str(port),
        REDIS_URL=redis_url,
        DATABASE_URL=f"sqlite:///{tmp_path / 'run.sqlite3'}",
        MEDIA_ROOT=str(tmp_path / "media"),
        DJANGO_SETTINGS_MODULE="config.settings",
        WORKER_HEARTBEAT_INTERVAL="0.5",
    )
    process = subprocess.Popen(
        [sys.executable, "scripts/run.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if "Demo API key" in line:
                break
        (killed,) = _live_pids(client) or {None}
        assert killed, "".join(lines[-30:])
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while not (_live_pids(client) - {killed}) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert _live_pids(client) - {killed}, "no worker came back"
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
        client.flushdb()
    assert "The worker stopped (exit code -9); starting a new one." in "".join(lines) + output
