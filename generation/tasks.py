"""The RQ task: run one job on the worker's resident predictor."""

import logging
import socket
import time

from django.db import close_old_connections

from django.conf import settings

from generation import jobs, outputs
from generation.models import Job
from generation.predictor import GenerationError, get_predictor, pick_device

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.5  # seconds between progress writes


class ProgressRecorder:
    """Writes step i of n to the job, at most every PROGRESS_INTERVAL seconds (and the last step)."""

    def __init__(self, job_id: int):
        self.job_id = job_id
        self.last_write = 0.0

    def __call__(self, step: int, total: int):
        now = time.monotonic()
        if step >= total or now - self.last_write >= PROGRESS_INTERVAL:
            self.last_write = now
            jobs.record_progress(self.job_id, step, total)


def run_job(job_id: int):
    """Run a queued job to success or failure. Never raises for a job's own failure."""
    close_old_connections()
    job = jobs.start(job_id, worker_name=socket.gethostname())
    if job is None:
        return  # no longer queued (failed by a sweep, already run)
    started = time.perf_counter()
    try:
        prediction = _predict(job)
        names = outputs.save_images(job, prediction.images)
        thumbnail = outputs.save_thumbnail(job, prediction.images[0])
    except GenerationError as exc:
        jobs.fail(job.id, str(exc))
        return
    except Exception:
        logger.exception("Job %s failed", job.id)
        jobs.fail(job.id, jobs.FAILED_MESSAGE)
        return
    jobs.succeed(job, names, generation_time=time.perf_counter() - started, seeds=prediction.seeds,
                 nsfw=prediction.nsfw, thumbnail=thumbnail)


def _predict(job: Job):
    if job.kind == Job.Kind.SUPER_RESOLUTION:
        from generation import upscalers

        predictor = get_predictor()
        return upscalers.run(job.params, device=predictor.device if predictor.loaded else pick_device(settings.SDXL_DEVICE))
    return get_predictor().run(job.kind, job.params, on_step=ProgressRecorder(job.id))


def on_rq_failure(rq_job, connection, exc_type, exc_value, traceback):
    """RQ gave up on the job (timeout, crash outside run_job): the job must not stay running."""
    job_id = rq_job.args[0]
    jobs.fail(job_id, "Timed out" if "Timeout" in exc_type.__name__ else jobs.FAILED_MESSAGE)
