"""Worker liveness in Redis, and the periodic maintenance that relies on it.

Each worker process keeps a short-lived key (`sdxl:worker:<name>`) fresh from a daemon thread, also
while a long job holds the main thread. The key vanishes a few seconds after the process dies
(kill -9, out of memory, a lost machine): that is how the sweep in generation/jobs.py knows a running
job has nobody left to finish it. The key's value says what the worker is: host, pid, queues, model,
device and the job it is running (the admin's queue page shows them).

The same thread runs maintenance every WORKER_MAINTENANCE_INTERVAL seconds, on one worker at a time
(a Redis lock): the job sweep and the monthly credit renewal. When it finds that Redis lost its data
(the epoch key is gone), the first worker to notice re-queues every queued job at once instead of
waiting for them to look lost.
"""

import json
import logging
import threading
import time

import redis
from django.conf import settings
from django.db import close_old_connections

from generation import queueing

logger = logging.getLogger(__name__)

KEY = "sdxl:worker:{}"
REGISTRY = "sdxl:workers"
MAINTENANCE_LOCK = "sdxl:maintenance-lock"
EPOCH_KEY = "sdxl:epoch"  # gone = Redis lost its data (restarted without persistence, flushed)

_current = None  # this process's Heartbeat, when it is a worker
_cached = {"at": 0.0, "workers": {}}
CACHE_SECONDS = 1.0


def ttl() -> int:
    return max(2, int(settings.WORKER_HEARTBEAT_INTERVAL * 3 + 0.999))


def live_workers() -> dict[str, dict]:
    """Every worker whose heartbeat is fresh, by name."""
    conn = queueing.connection()
    names = sorted(name.decode() for name in conn.smembers(REGISTRY))
    if not names:
        return {}
    values = conn.mget([KEY.format(name) for name in names])
    gone = [name for name, value in zip(names, values) if value is None]
    if gone:
        conn.srem(REGISTRY, *gone)
    return {name: json.loads(value) for name, value in zip(names, values) if value is not None}


def live_workers_cached() -> dict[str, dict]:
    """live_workers(), at most CACHE_SECONDS old (for the ETA of every API answer)."""
    if time.monotonic() - _cached["at"] > CACHE_SECONDS:
        _cached["workers"] = live_workers()
        _cached["at"] = time.monotonic()
    return _cached["workers"]


def is_alive(worker_name: str) -> bool:
    return bool(worker_name) and queueing.connection().exists(KEY.format(worker_name)) == 1


def current_worker_name() -> str:
    return _current.name if _current else ""


def set_current_job(job_id: int | None, predicted: float | None = None, publish: bool = True):
    """What this worker runs now; published at once unless `publish` is False (then with the next beat)."""
    if _current:
        _current.job_id = job_id
        _current.job_started = time.time() if job_id else None
        _current.job_predicted = predicted
        if publish:
            try:
                _current.beat()
            except redis.RedisError:
                pass


class Heartbeat:
    def __init__(self, name: str, info: dict, maintenance=None, on_data_loss=None):
        self.name, self.info, self.maintenance, self.on_data_loss = name, info, maintenance, on_data_loss
        self.job_id = self.job_started = self.job_predicted = None
        self._stopped = threading.Event()
        self._last_maintenance = 0.0

    def start(self):
        global _current
        _current = self
        self.beat()
        threading.Thread(target=self._run, name="heartbeat", daemon=True).start()

    def stop(self):
        global _current
        self._stopped.set()
        _current = None
        try:
            conn = queueing.connection()
            conn.delete(KEY.format(self.name))
            conn.srem(REGISTRY, self.name)
        except redis.RedisError:
            pass

    def beat(self):
        record = {**self.info, "job_id": self.job_id, "job_started": self.job_started,
                  "job_predicted": self.job_predicted, "beat_at": time.time()}
        with queueing.connection().pipeline() as pipe:
            pipe.set(KEY.format(self.name), json.dumps(record), ex=ttl())
            pipe.sadd(REGISTRY, self.name)
            pipe.execute()

    def _run(self):
        while not self._stopped.wait(settings.WORKER_HEARTBEAT_INTERVAL):
            try:
                self.beat()
                self.check_epoch()
                if self.maintenance and time.monotonic() - self._last_maintenance >= settings.WORKER_MAINTENANCE_INTERVAL:
                    self._last_maintenance = time.monotonic()
                    self._maintain()
            except Exception:  # Redis or the database away for a moment: try again next beat
                logger.warning("Heartbeat/maintenance failed; retrying", exc_info=True)
            finally:
                close_old_connections()

    def check_epoch(self) -> bool:
        """True (and the data-loss recovery run) when this worker is the first to see Redis empty."""
        conn = queueing.connection()
        if conn.exists(EPOCH_KEY) or not conn.set(EPOCH_KEY, self.name, nx=True):
            return False
        logger.warning("Redis has no epoch (first start, or it lost its data): re-queuing queued jobs it does not know")
        if self.on_data_loss:
            self.on_data_loss()
        return True

    def _maintain(self):
        lock = queueing.connection().set(MAINTENANCE_LOCK, self.name, nx=True,
                                         ex=max(1, int(settings.WORKER_MAINTENANCE_INTERVAL)))
        if lock:
            self.maintenance()
