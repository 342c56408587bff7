"""The RQ worker class: sets up the predictors once at start and runs every job in the same process."""

import logging
import os
import socket
import time

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections
from rq import Queue, SimpleWorker

from billing import credits
from generation import kinds
from generation.lifecycle import recovery, webhooks
from generation.queueing import estimates, queue
from generation.runtime import bridge, heartbeat
from generation.runtime.registry import MAIN

logger = logging.getLogger(__name__)


def maintenance(**sweep_options):
    """Periodic upkeep, on one worker at a time: recover lost jobs and webhooks, recount the backlog,
    renew monthly credits."""
    swept = recovery.sweep(**sweep_options)
    swept["webhooks"] = webhooks.redeliver_lost()
    estimates.recount()
    renewed = credits.renew_due()
    if any(swept.values()) or renewed:
        logger.info("Maintenance: %s, %d account(s) renewed", swept, renewed)


class GenerationWorker(SimpleWorker):
    """A SimpleWorker (no fork per job) whose process keeps the pipeline resident, reports a heartbeat
    while it runs (also in the middle of a job) and sweeps up jobs whose worker died.

    SIGTERM finishes the current job, then exits; a second SIGTERM (or SIGINT) puts the current job back
    on its queue and exits at once.
    """

    def work(self, *args, **kwargs):
        if set(self.queue_names()) <= kinds.own_queues() and settings.BACKGROUND_WORKER_NICE:
            # a worker of background work alone (trainings) leaves the CPU to generations on the same machine
            os.nice(settings.BACKGROUND_WORKER_NICE)
        held, checkpoints = self._load()
        recovery.claim_redis()
        self._serve(checkpoints)
        predictor = bridge.predictor(MAIN, checkpoints[0])
        beat = heartbeat.Heartbeat(
            self.name,
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "queues": self.queue_names(),
                "model": predictor.model_name,
                "checkpoints": held,
                "device": str(predictor.device),
            },
            maintenance=maintenance,
            on_data_loss=lambda: maintenance(lost_after=0),
        )
        beat.start()
        try:
            try:
                if not beat.check_epoch():
                    maintenance()
            except Exception:
                logger.exception("Maintenance at start failed; the periodic one retries")
            return super().work(*args, **kwargs)
        finally:
            beat.stop()

    def _load(self) -> tuple[list[str], list[str]]:
        """Find the held checkpoints in the library and set up their predictors, waiting for the database
        when it is not there yet (a worker started before it, or during its restart) rather than dying."""
        delay = 1.0
        while True:
            try:
                held, checkpoints = bridge.held_checkpoints()
                bridge.setup_all(checkpoints, self.queue_names())
                return held, checkpoints
            except (OperationalError, InterfaceError) as exc:
                logger.warning("Database unavailable at start (%s); trying again in %.0fs", exc, delay)
                close_old_connections()
                time.sleep(delay)
                delay = min(30.0, delay * 2)

    def _serve(self, checkpoints: list[str]):
        """Listen on each given queue of each held checkpoint ("" the default), in the given order of
        priority: `rqworker high default low` holding two checkpoints serves high, high.<second>,
        default, default.<second>, low, low.<second>."""
        names = [queue.queue_name(name, checkpoint) for name in self.queue_names() for checkpoint in checkpoints]
        self.queues = [Queue(name, connection=self.connection) for name in names]
        self._ordered_queues = self.queues[:]
