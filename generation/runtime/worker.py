"""The RQ worker class: sets up the predictors once at start and runs every job in the same process."""

import logging
import os
import socket

from rq import SimpleWorker

from billing import credits
from generation import estimates, recovery, webhooks
from generation.runtime import heartbeat
from generation.runtime.predictors import predictor_for, setup_all

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
        setup_all()
        predictor = predictor_for("text2img")
        beat = heartbeat.Heartbeat(
            self.name,
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "queues": self.queue_names(),
                "model": predictor.model_name,
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
