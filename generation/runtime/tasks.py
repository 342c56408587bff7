"""The RQ tasks (named by dotted path in generation/queueing/queue.py): run one job (with the compatible jobs
waiting behind it) on the worker's resident predictor for its kind, from its resolved inputs, and settle
each job; RQ's failure callback. With generation/runtime/bridge.py, the worker's side of the database."""

import logging
import socket
import time

import redis
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection, transaction
from rq.timeouts import JobTimeoutException

from generation.infra import redis_client
from generation.inputs import storage
from generation.lifecycle import jobs, webhooks
from generation.models import Job
from generation.queueing import estimates, monitoring, queue
from generation.runtime import bridge, heartbeat
from generation.runtime.predictors import GenerationError

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.5  # seconds between progress writes
STORAGE_FAILED_MESSAGE = "Failed, Try Again (the images could not be stored)"
TIMED_OUT_MESSAGE = "Timed out"
CANCEL_CHECK_INTERVAL = 0.1  # seconds between looks at the job's cancel flag
HISTORY_POINTS = 200  # a training's loss history keeps about this many steps
DATABASE_ERRORS = (OperationalError, InterfaceError)
RETRY_FIRST_DELAY, RETRY_MAX_DELAY = 0.25, 5.0  # seconds: the backoff while the database is away


class JobCanceled(Exception):
    """Raised between denoising steps once the job was canceled, or is no longer this try's (its worker
    was stopped long enough for the job to be re-queued): the pipeline stops at once."""


class StepMonitor:
    """Called after every denoising step: writes step i of n, with a preview of the image forming when
    the predictor offers one, to the job every PROGRESS_INTERVAL seconds (only while the job is running
    this try), and stops the job when it was canceled (looked up every CANCEL_CHECK_INTERVAL seconds) or
    its progress can no longer be written. Both are throttled, so a step costs a clock
    read, and a job shorter than the intervals costs nothing more (its final step count is written
    with its result; its preview is deleted when it ends)."""

    def __init__(self, job):
        self.job, self.job_id = job, job.id
        self.last_write = self.last_check = time.monotonic()
        self.total = 0
        self.first_step = self.last_step = None  # (step, time) for the learned cost per step
        self.preview_name = ""
        self.details = dict(job.details)  # what an earlier try reported (a training's samples and losses)
        self.details_changed = False

    @property
    def step_seconds(self) -> float | None:
        if self.first_step is None or self.last_step[0] == self.first_step[0]:
            return None
        return (self.last_step[1] - self.first_step[1]) / (self.last_step[0] - self.first_step[0])

    def __call__(self, step: int, total: int, preview=None, phase=None, details=None, sample=None):
        now = time.monotonic()
        if self.first_step is None:
            self.first_step = (step, now)
        self.last_step = (step, now)
        self.total = total
        if details:
            self._note(step, total, details)
        if now - self.last_check >= CANCEL_CHECK_INTERVAL:
            self.last_check = now
            if self._cancel_requested():
                raise JobCanceled()
        if sample is not None:  # kept and shown at once: a training makes few
            self._keep_sample(step, sample)
            self.last_write = 0.0
        if now - self.last_write >= PROGRESS_INTERVAL and step < total:
            self.last_write = now
            preview_name = self._new_preview(preview)
            if not self._record_progress(step, total, preview_name):
                raise JobCanceled()  # canceled, or given up by this worker and re-queued meanwhile
            self._publish(step, total)
        if phase is not None:
            self.phase(phase)

    def phase(self, name: str):
        """Tell the job's streams what the worker does after its steps ("decoding", "saving"): seconds of
        work that would otherwise look like a hang. A stage of its kind (a training's) is also kept on the
        job and sent to its webhook."""
        if name in self.job.parameters.stages:
            self.details["stage"] = name
            self.details_changed = True
            if not self._record_progress(self.last_step[0] if self.last_step else 0, self.total, None):
                raise JobCanceled()
            if self.job.params.get("webhook"):
                webhooks.announce_stage(self.job_id, name)
        if self.total:
            self._publish(self.last_step[0] if self.last_step else self.total, self.total, phase=name)

    def _note(self, step: int, total: int, details: dict):
        """What a step reports besides its number (a training's loss): the latest, a history of about
        HISTORY_POINTS for a chart, and the ETA."""
        self.details.update(details)
        if "loss" in details and step % max(1, total // HISTORY_POINTS) == 0:
            self.details.setdefault("losses", []).append([step, details["loss"]])
        if self.step_seconds is not None:
            self.details["eta"] = round((total - step) * self.step_seconds, 1)
        self.details_changed = True

    def _keep_sample(self, step: int, image):
        name = storage.save_sample(self.job, image, step)
        self.details.setdefault("samples", []).append({"step": step, "name": name})
        self.details_changed = True

    def _publish(self, step: int, total: int, phase: str = "denoising"):
        """The step, ETA, preview and phase for the job's event streams (nobody listening costs one
        PUBLISH)."""
        remaining = (total - step) * self.step_seconds if self.step_seconds is not None else None
        preview = storage.absolute_url(self.job.base_url, self.preview_name) if self.preview_name else None
        event = {"progress": round(step / total, 3), "step": step, "total": total, "preview": preview, "phase": phase}
        if remaining is not None:
            event["eta"] = round(max(0.1, remaining), 2)
        if "loss" in self.details:
            event["loss"] = self.details["loss"]
        if samples := self.details.get("samples"):
            event["sample"] = storage.absolute_url(self.job.base_url, samples[-1]["name"])
        try:
            queue.publish_progress(self.job_id, event)
        except redis.RedisError:
            pass  # the progress is in the database; streams catch up at the next event

    def _record_progress(self, step: int, total: int, preview_name: str | None) -> bool:
        """Write the step (and what else the job reported since); False once the job is no longer this
        try's. While the database is away the job runs on (written with the next one, or its result)."""
        details = self.details if self.details_changed else None
        try:
            recorded = jobs.record_progress(self.job_id, self.job.attempt, step, total, preview_name, details)
        except DATABASE_ERRORS:
            connection.close()
            return True
        self.details_changed = False
        return recorded

    def _cancel_requested(self) -> bool:
        """The cancel flag; while Redis is away the job runs on (a cancel also ends it in the database,
        where the next progress write finds it)."""
        try:
            return queue.cancel_requested(self.job_id)
        except redis.RedisError:
            return False

    def _new_preview(self, preview) -> str | None:
        """Store the image `preview()` makes (a callable, so steps between writes never compute one)
        in place of the last one; its name, or None when there is none."""
        image = preview() if preview is not None else None
        if image is None:
            return None
        previous, self.preview_name = self.preview_name, storage.save_preview(self.job, image)
        self.discard([previous])
        return self.preview_name

    def discard(self, names=None):
        """Delete previews (by default the current one: the job has ended)."""
        names = [self.preview_name] if names is None else names
        storage.delete_names([name for name in names if name])


class BatchMonitor:
    """`on_step` of a batch: each job's StepMonitor with a preview of its own first image. A canceled
    job is left out from then on; the batch stops only when every job in it was canceled."""

    def __init__(self, batch, monitors):
        self.monitors, self.canceled = monitors, set()
        self.offsets = [sum(job.parameters.samples for job in batch[:index]) for index in range(len(batch))]

    def __call__(self, step: int, total: int, preview=None, phase=None):
        for index, monitor in enumerate(self.monitors):
            if index in self.canceled:
                continue
            own_preview = (lambda offset=self.offsets[index]: preview(offset)) if preview else None
            try:
                monitor(step, total, preview=own_preview, phase=phase)
            except JobCanceled:
                self.canceled.add(index)
        if len(self.canceled) == len(self.monitors):
            raise JobCanceled()


def run_job(job_id: int, attempt: int = 1):
    """Run one try of a queued job to success or failure, with the compatible jobs waiting behind it on
    its queue when WORKER_MAX_BATCH allows (one pipeline call; each job settled on its own). Never raises
    for a job's own failure; a cold shutdown of the worker in the middle puts the jobs back on their queue."""
    close_old_connections()
    try:
        job = jobs.start(job_id, attempt, worker_name=heartbeat.current_worker_name() or socket.gethostname())
    except (OperationalError, InterfaceError):
        # the database is away: this try ends here, RQ forgets it, and the sweep queues the job again
        logger.warning("Database unavailable when starting job %s; it will be re-queued", job_id)
        return
    if job is None:
        return  # no longer queued for this try (re-queued, failed by a sweep, already run)
    batch = [job, *_companions(job)]
    heartbeat.set_current_job([member.id for member in batch], sum(member.predicted_seconds for member in batch))
    started = time.perf_counter()
    monitors = [StepMonitor(member) for member in batch]
    try:
        predictions = _predict(batch, monitors)
    except JobTimeoutException:  # GENERATION_JOB_TIMEOUT passed: every job of the batch ends, refunded
        logger.warning("Job(s) %s timed out", [member.id for member in batch])
        predictions = [GenerationError(TIMED_OUT_MESSAGE)] * len(batch)
    except BaseException:  # SystemExit / KeyboardInterrupt: the worker is going away
        heartbeat.set_current_job([], publish=False)
        for member in batch:
            jobs.retry_or_fail(member, "worker shut down")
        raise
    finally:
        for monitor in monitors:
            monitor.discard()
    seconds = time.perf_counter() - started
    images = sum(member.parameters.samples for member in batch)
    try:  # the heartbeat names the batch's jobs until each is settled: until then they are this worker's
        for member, monitor, prediction in zip(batch, monitors, predictions):
            try:  # each job of a batch ends, whatever happens to another's
                _settle_one(member, monitor, prediction, seconds, share=member.parameters.samples / images)
                bridge.forget_state(member.parameters, member.file_prefix.hex)
            except Exception:  # the database away past WORKER_DATABASE_RETRY_SECONDS: the sweep takes over
                logger.exception("Could not settle job %s", member.id)
    finally:
        heartbeat.set_current_job([], publish=False)  # the next beat says it; the ETA allows for it


def _settle_one(job, monitor, prediction, seconds: float, share: float):
    if prediction is None:  # canceled while its batch ran: its images are dropped
        return
    if isinstance(prediction, GenerationError):
        _until_the_database_answers(lambda: jobs.fail(job.id, str(prediction), attempt=job.attempt), job)
        return
    _settle(job, prediction, seconds, monitor, share)


def _until_the_database_answers(write, job):
    """Run `write` (the database write that ends `job`), again with a growing pause while the database is
    away, for up to WORKER_DATABASE_RETRY_SECONDS: a PostgreSQL restart must not leave a job running.
    Each try is a transaction of its own (a lost commit is found by the next try's conditions)."""
    deadline = time.monotonic() + settings.WORKER_DATABASE_RETRY_SECONDS
    delay = RETRY_FIRST_DELAY
    while True:
        try:
            return write()
        except DATABASE_ERRORS:
            connection.close()
            if time.monotonic() + delay > deadline:
                raise
            logger.warning("Database unavailable while settling job %s; trying again in %.2f s", job.id, delay)
            time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_DELAY)


def _predict(batch: list, monitors: list) -> list:
    """Resolve each job's inputs and run those that resolved in one predictor call. One entry per job:
    its Prediction, its GenerationError, or None for a job canceled while it ran."""
    results, resolved = {}, {}
    for index, member in enumerate(batch):
        try:
            resolved[index] = bridge.resolve(member.parameters, job_key=member.file_prefix.hex)
        except GenerationError as exc:
            results[index] = exc
        except JobTimeoutException:
            raise
        except Exception:
            logger.exception("Could not resolve the inputs of job %s", member.id)
            results[index] = GenerationError(jobs.FAILED_MESSAGE)
    runnable = list(resolved)
    if runnable:
        if len(runnable) == 1:
            on_step = monitors[runnable[0]]
        else:
            on_step = BatchMonitor([batch[i] for i in runnable], [monitors[i] for i in runnable])
        _, checkpoint = queue.split_queue_name(batch[0].queue_name)
        try:
            predictions = bridge.predict(batch[0].kind, checkpoint, [resolved[i] for i in runnable], on_step)
        except JobCanceled:
            logger.info("Job(s) %s stopped: canceled", [batch[i].id for i in runnable])
            predictions = [None] * len(runnable)
        except GenerationError as exc:
            predictions = [exc] * len(runnable)
        except JobTimeoutException:
            raise
        except Exception:
            logger.exception("Job(s) %s failed", [batch[i].id for i in runnable])
            predictions = [GenerationError(jobs.FAILED_MESSAGE)] * len(runnable)
        canceled = on_step.canceled if isinstance(on_step, BatchMonitor) else set()
        for position, (index, prediction) in enumerate(zip(runnable, predictions)):
            results[index] = None if position in canceled else prediction
    return [results[index] for index in range(len(batch))]


def _companions(job) -> list:
    """Compatible jobs waiting behind `job` on its queue, taken off it and started, up to
    WORKER_MAX_BATCH in all. Only from the same queue, so that a batch never puts a lower-priority job
    before a higher-priority one; each is taken with one atomic removal, so no other worker gets it."""
    key = job.parameters.batch_key()
    if settings.WORKER_MAX_BATCH < 2 or key is None:
        return []
    companions = []
    try:
        waiting = queue.waiting_ids(job.queue_name, 4 * settings.WORKER_MAX_BATCH)
        ids = [Job.id_from_rq_job_id(rq_id) for rq_id in waiting]
        queued = Job.objects.filter(pk__in=[i for i in ids if i], status=Job.Status.QUEUED, queue_name=job.queue_name)
        candidates = {candidate.rq_job_id: candidate for candidate in queued}
        for rq_id in waiting:
            candidate = candidates.get(rq_id)
            if candidate is None or candidate.parameters.batch_key() != key:
                continue
            if queue.take(job.queue_name, rq_id):
                started = jobs.start(candidate.id, candidate.attempt, worker_name=job.worker_name)
                if started is not None:
                    companions.append(started)
            if len(companions) + 1 >= settings.WORKER_MAX_BATCH:
                break
    except (redis.RedisError, OperationalError, InterfaceError):
        # Redis or the database away for a moment: run what was taken; a job taken off its queue but
        # not started is found by the sweep (queued, not on its queue) and queued again
        logger.warning("Could not gather a batch for job %s; running %d job(s)", job.id, len(companions) + 1)
    return companions


def _settle(job, prediction, seconds: float, monitor: StepMonitor, share: float):
    """Store a job's images and record its success and its timing: its `share` of the call's time (its
    images' part of a batch), so that learned timings, and so ETAs, follow how jobs really run."""
    params = job.parameters
    names, thumbnail, model = [], "", ""
    monitor.phase("saving")
    try:
        names = storage.save_images(job, prediction.images)
        thumbnail = storage.save_thumbnail(job, prediction.images[0])
        storage.save_hints(job, prediction.hints)
        if prediction.model is not None:  # a model the job made: stored for its owner's library
            monitor.phase("trained_model_uploading")
            model = bridge.keep_model(job, prediction.model)
            monitor.phase("trained_model_uploaded")
    except Exception:  # a full disk, storage unreachable: the job fails and is refunded, nothing is kept
        logger.exception("Could not store the images of job %s", job.id)
        _discard(job, names, thumbnail, model)
        _until_the_database_answers(lambda: jobs.fail(job.id, STORAGE_FAILED_MESSAGE, attempt=job.attempt), job)
        return
    outcome = {
        "generation_time": seconds,
        "seeds": prediction.seeds,
        "nsfw": prediction.nsfw,
        "thumbnail": thumbnail,
        "steps": monitor.total,
        "pipeline_time": prediction.seconds,
    }
    try:
        recorded = _until_the_database_answers(lambda: _record_success(job, names, outcome, model, monitor), job)
    except DATABASE_ERRORS:
        _discard(job, names, thumbnail, model)  # the sweep gives the job another try or refunds it
        raise
    except GenerationError as exc:  # its model was refused by the library (its check, the owner's quota)
        _discard(job, names, thumbnail, model)
        refusal = str(exc)
        _until_the_database_answers(lambda: jobs.fail(job.id, refusal, attempt=job.attempt), job)
        return
    if recorded:
        step_seconds = monitor.step_seconds * share if monitor.step_seconds is not None else None
        try:
            with redis_client.connection().pipeline(transaction=False) as pipe:
                monitoring.observe_generation(pipe, job.kind, seconds * share)
                estimates.learn(pipe, params, seconds * share, step_seconds)
                pipe.execute()
        except redis.RedisError:
            logger.warning("Could not record the timing of job %s", job.id)
    else:  # canceled (or taken over) while its images were being saved: nobody will see these
        _discard(job, names, thumbnail, model)


def _discard(job, names: list[str], thumbnail: str, model: str):
    """What a job stored that it will not keep: its images, their thumbnail, the model it made."""
    storage.delete_outputs(job, names, thumbnail)
    bridge.discard_model(model)


def _record_success(job, names: list[str], outcome: dict, model: str, monitor: StepMonitor) -> bool:
    """The job's success, and the model it made in its owner's library, in one transaction (neither
    without the other); True when recorded now or by an earlier try of this write."""
    with transaction.atomic():
        if model:
            monitor.phase("deploying_model")
            bridge.deploy_model(job, model)
        return jobs.succeed(job, names, **outcome) or jobs.succeeded_with(job, names)


def on_rq_failure(rq_job, connection, exc_type, exc_value, traceback):
    """RQ gave up on a try (timeout, crash outside run_job): the job must not stay running.
    A try RQ abandoned (its worker died) is left to the sweep, which may run the job again."""
    job_id, attempt = rq_job.args
    if exc_type.__name__ == "AbandonedJobError":
        return
    jobs.fail(
        job_id, TIMED_OUT_MESSAGE if issubclass(exc_type, JobTimeoutException) else jobs.FAILED_MESSAGE, attempt=attempt
    )
