"""`make run` (scripts/run.py) as a real process, for the tests that use it the way a newcomer does."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import redis

from config import redis_server

ROOT = Path(__file__).resolve().parent.parent


class MakeRun:
    def __init__(self, tmp_path, redis_url=None):
        """`make run` with the suite's Redis (database 12, emptied), or REDIS_URL `redis_url`."""
        self.port = redis_server.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_dir = tmp_path / "log"
        self.database = tmp_path / "run.sqlite3"
        if redis_url is None:
            redis_url = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/12"
            redis.Redis.from_url(redis_url).flushdb()
        self.redis = redis.Redis.from_url(redis_url)
        env = dict(
            os.environ,
            PORT=str(self.port),
            REDIS_URL=redis_url,
            DATABASE_URL=f"sqlite:///{self.database}",
            MEDIA_ROOT=str(tmp_path / "media"),
            LOG_DIR=str(self.log_dir),
            DJANGO_SETTINGS_MODULE="config.settings",
            WORKER_HEARTBEAT_INTERVAL="0.5",
            WEB_CONCURRENCY="1",  # one web process is enough to hold 32 slow clients
            SAFE_HTTP_ALLOWED_NETWORKS="127.0.0.1/32",  # as docs/api.md's webhook example has it started
        )
        self.process = subprocess.Popen(
            [sys.executable, "scripts/run.py"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.banner = []
        for line in self.process.stdout:
            self.banner.append(line)
            if line.strip().startswith("Ctrl-C"):
                break
        self.key = next(line.split()[-1] for line in self.banner if "Demo API key" in line)
        self.later = []
        threading.Thread(target=self._read_the_rest, daemon=True).start()

    def _read_the_rest(self):
        self.later.extend(self.process.stdout)

    def live_worker_pids(self, serving: str = "default") -> set[int]:
        """The live workers that serve the queue `serving` (the generation worker's; "training": the
        training worker's)."""
        pids = set()
        for name in self.redis.smembers("sdxl:workers"):
            record = self.redis.get(f"sdxl:worker:{name.decode()}")
            if record and serving in json.loads(record)["queues"]:
                pids.add(json.loads(record)["pid"])
        return pids

    def ctrl_c(self) -> str:
        """SIGINT to the terminal's process group, as Ctrl-C sends it; what it printed until it ended."""
        os.killpg(self.process.pid, signal.SIGINT)
        self.process.wait(timeout=60)
        return "".join(self.later)

    def stop(self):
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        with contextlib.suppress(redis.RedisError):
            self.redis.flushdb()
