"""This worker's heartbeat: a daemon thread that keeps its liveness key fresh (generation/queueing/liveness.py),
also while a long job holds the main thread, and runs the periodic maintenance.

Maintenance runs every WORKER_MAINTENANCE_INTERVAL seconds on one worker at a time (a Redis lock).
When the heartbeat finds that Redis lost its data (the epoch key is gone), the first worker to notice
runs the data-loss recovery at once instead of waiting for queued jobs to look lost.
"""

import logging
import threading
import time

import redis
from django.conf import settings
from django.db import close_old_connections

from generation.infra.redis_client import connection
from generation.queueing import liveness

logger = logging.getLogger(__name__)

MAINTENANCE_LOCK = "sdxl:maintenance-lock"

_current = None  # this process's Heartbeat


def current_worker_name() -> str:
    return _current.name if _current else ""


def set_current_job(job_ids: list[int], predicted: float | None = None, publish: bool = True):
    """The jobs this worker runs now (a batch: its first leads), until each is settled; published at once
    unless `publish` is False (then with the next beat)."""
    if _current:
        _current.job_ids = list(job_ids)
        _current.job_started = time.time() if job_ids else None
        _current.job_predicted = predicted
        if publish:
            try:
                _current.beat()
            except redis.RedisError:
                pass


class Heartbeat:
    def __init__(self, name: str, info: dict, maintenance=None, on_data_loss=None):
        self.name, self.info, self.maintenance, self.on_data_loss = name, info, maintenance, on_data_loss
        self.job_ids, self.job_started, self.job_predicted = [], None, None
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
            liveness.withdraw(self.name)
        except redis.RedisError:
            pass

    def beat(self):
        liveness.publish(
            self.name,
            {
                **self.info,
                "job_id": self.job_ids[0] if self.job_ids else None,
                "job_ids": self.job_ids,
                "job_started": self.job_started,
                "job_predicted": self.job_predicted,
                "beat_at": time.time(),
            },
        )

    def _run(self):
        while not self._stopped.wait(settings.WORKER_HEARTBEAT_INTERVAL):
            try:
                self.beat()
                self.check_epoch()
                if (
                    self.maintenance
                    and time.monotonic() - self._last_maintenance >= settings.WORKER_MAINTENANCE_INTERVAL
                ):
                    self._last_maintenance = time.monotonic()
                    self._maintain()
            except Exception:  # Redis or the database away for a moment: try again next beat
                logger.warning("Heartbeat/maintenance failed; retrying", exc_info=True)
            finally:
                close_old_connections()

    def check_epoch(self) -> bool:
        """True (and the data-loss recovery run) when this worker is the first to see Redis empty."""
        if not liveness.begin_epoch(self.name):
            return False
        logger.warning("Redis has no epoch (first start, or it lost its data): re-queuing queued jobs it does not know")
        if self.on_data_loss:
            self.on_data_loss()
        return True

    def _maintain(self):
        lock = connection().set(
            MAINTENANCE_LOCK, self.name, nx=True, ex=max(1, int(settings.WORKER_MAINTENANCE_INTERVAL))
        )
        if lock:
            self.maintenance()
