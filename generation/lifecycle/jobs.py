"""Job state changes, all in one place: queued -> running -> success | failed | canceled (and back
to queued when the worker running a job is lost).

Each change is a conditional UPDATE on the current status (and try), so two actors (a worker and a
sweep, say) can never both move the same job. Every try of a job has its own RQ job id
(`Job.rq_job_id`), so a stale try that RQ reports or runs late can never touch a newer one. Credits
move in the same transaction as the state (billing/credits.py). Once a job is final, waiting requests
are woken and `signals.job_finished` is sent (webhooks listen to it).
"""

import logging
from datetime import timedelta

import redis
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from billing import credits
from generation import kinds
from generation.inputs import storage
from generation.kinds.base import JobParams
from generation.models import Job
from generation.queueing import estimates, queue
from generation.signals import job_finished, job_settled

logger = logging.getLogger(__name__)

FAILED_MESSAGE = "Failed, Try Again"
WORKER_LOST_MESSAGE = "Failed, Try Again (the worker running it stopped)"
CANCELED_MESSAGE = "Canceled"
UNFINISHED = [Job.Status.QUEUED, Job.Status.RUNNING]
IDEMPOTENCY_WINDOW = timedelta(hours=24)


class IdempotencyConflict(Exception):
    """An Idempotency-Key the account already used for a different request."""


def submit(
    *,
    user,
    params: JobParams,
    base_url: str,
    api_key=None,
    queue_name: str | None = None,
    idempotency_key: str = "",
    request_hash: str = "",
    account=None,
    inputs: dict | None = None,
    price: int | None = None,
) -> Job:
    """Record the job, reserve its credits, store its input images and queue it once the transaction
    commits.

    Raises QueueFull when the account already has its plan's maximum of unfinished jobs, and
    InsufficientCredits when the balance cannot pay for it; then nothing is recorded, stored or queued.
    Both are checked and taken in one conditional UPDATE, so concurrent requests cannot overshoot
    either. `inputs` maps a parameter field to the images.ImageSource it names once stored. Two concurrent requests
    with one `idempotency_key` meet at the database's unique constraint and the second gets the first's
    job (`replayed`). `account` is the user's, when the caller already has it. `price`: its credits when
    not its kind's plain cost (models with a credit multiplier).
    """
    account = account or credits.account_for(user)
    price = kinds.cost(params) if price is None else price
    stored = []
    try:
        with transaction.atomic():
            credits.admit(account, price)
            for field, source in (inputs or {}).items():
                stored.append(storage.store_input(source))
                params.take_input(field, stored[-1])
                if source.treatments:
                    params.input_treatments[field] = list(source.treatments)
            job = Job.objects.create(
                user=user,
                api_key=api_key,
                kind=params.kind,
                params=params.to_dict(),
                seed=params.seed,
                output_format=params.output_format,
                base_url=base_url,
                queue_name=queue_name or account.plan.priority,
                webhook_status="pending" if params.webhook else "",
                idempotency_key=idempotency_key,
                request_hash=request_hash,
                predicted_seconds=estimates.predict(params),
            )
            credits.record_reservation(job, price)
            transaction.on_commit(lambda: _enqueue_or_fail(job))
    except IntegrityError:
        storage.delete_names(stored)
        earlier = replayed(user, idempotency_key, request_hash) if idempotency_key else None
        if earlier is None:
            raise
        return earlier
    except BaseException:
        storage.delete_names(stored)
        raise
    return job


def replayed(user, idempotency_key: str, request_hash: str = "") -> Job | None:
    """The account's job for this idempotency key, if made in the last 24 hours (an older one gives the
    key up), marked `replayed`. IdempotencyConflict when it was made for another request (`request_hash`)."""
    earlier = Job.objects.filter(user=user, idempotency_key=idempotency_key).first()
    if earlier and timezone.now() - earlier.queued_at < IDEMPOTENCY_WINDOW:
        if request_hash and earlier.request_hash and request_hash != earlier.request_hash:
            raise IdempotencyConflict()
        earlier.replayed = True
        return earlier
    if earlier:
        Job.objects.filter(pk=earlier.pk).update(idempotency_key="")
    return None


def _enqueue_or_fail(job: Job):
    try:
        queue.enqueue(job, timeout=job.parameters.timeout())
    except Exception:
        logger.exception("Could not enqueue job %s", job.id)
        fail(job.id, "Queue unavailable, try again")
        job.refresh_from_db()


def _enqueue_or_leave_queued(job: Job):
    """Queue another try; when Redis is away, the job stays queued and the sweep queues it once Redis
    is back (a lost connection is the infrastructure's fault, not the job's)."""
    try:
        queue.enqueue(job, timeout=job.parameters.timeout())
    except redis.RedisError:
        logger.warning("Redis unavailable: job %s stays queued until the sweep queues it again", job.id)


def start(job_id: int, attempt: int, worker_name: str) -> Job | None:
    """Move a queued job to running for this try; None if it is no longer queued for it.

    One statement that also returns the row (UPDATE ... RETURNING, PostgreSQL and SQLite alike): this
    runs once per job on the worker, where the ORM's UPDATE-then-SELECT costs two round trips.
    """
    table = Job._meta.db_table
    moved = list(
        Job.objects.raw(
            f"UPDATE {table} SET status = %s, started_at = %s, worker_name = %s, runs = runs + 1, "
            f"progress_step = 0, progress_total = 0 WHERE id = %s AND attempt = %s AND status = %s RETURNING *",
            [Job.Status.RUNNING, timezone.now(), worker_name[:200], job_id, attempt, Job.Status.QUEUED],
        )
    )
    if not moved:
        return None
    queue.remove_from_backlog(moved[0], started=True)
    return moved[0]


def _finish_unfinished(job_id: int, attempt: int | None, **fields) -> tuple[int, bool]:
    """Move a queued or running job to a final state: (rows moved, whether it was still queued)."""
    unfinished = Job.objects.filter(pk=job_id)
    if attempt is not None:
        unfinished = unfinished.filter(attempt=attempt)
    was_queued = unfinished.filter(status=Job.Status.QUEUED).update(**fields)
    moved = was_queued or unfinished.filter(status=Job.Status.RUNNING).update(**fields)
    return moved, bool(was_queued)


def record_progress(
    job_id: int, attempt: int, step: int, total: int, preview_name: str | None = None, details: dict | None = None
) -> bool:
    """Step `step` of `total` (the latest preview, what else the job reports) of a job running this try;
    False once it is not (canceled, or taken over by a later try: a worker resumed after it was given up
    must not write)."""
    fields = {"progress_step": step, "progress_total": total}
    if preview_name is not None:
        fields["preview_name"] = preview_name
    if details is not None:
        fields["details"] = details
    return bool(Job.objects.filter(pk=job_id, attempt=attempt, status=Job.Status.RUNNING).update(**fields))


@transaction.atomic
def succeed(
    job: Job,
    output_names: list[str],
    generation_time: float,
    seeds: list[int],
    nsfw=None,
    thumbnail: str = "",
    steps: int = 0,
    pipeline_time: float | None = None,
) -> bool:
    """Record the outputs, their seeds (and NSFW flags), the scheduler's step count, and charge the
    reserved credits."""
    moved = Job.objects.filter(pk=job.pk, attempt=job.attempt, status=Job.Status.RUNNING).update(
        status=Job.Status.SUCCESS,
        output_names=output_names,
        thumbnail_name=thumbnail,
        generation_time=generation_time,
        pipeline_time=pipeline_time,
        seeds=seeds,
        nsfw=nsfw,
        progress_step=steps,
        progress_total=steps,
        finished_at=timezone.now(),
    )
    if moved:
        credits.charge(job)
        transaction.on_commit(
            lambda: _announce_finished(job.pk, has_webhook=job.webhook_status == "pending"), robust=True
        )
    return bool(moved)


def succeeded_with(job: Job, output_names: list[str]) -> bool:
    """Whether this try already succeeded with these outputs: a retried `succeed` whose first commit went
    through before the connection was lost."""
    return Job.objects.filter(
        pk=job.pk, attempt=job.attempt, status=Job.Status.SUCCESS, output_names=output_names
    ).exists()


@transaction.atomic
def fail(job_id: int, reason: str, attempt: int | None = None) -> bool:
    """Mark a queued or running job failed with `reason` (shown to the user) and refund its credits.
    With `attempt`, only if the job is still on that try."""
    moved, was_queued = _finish_unfinished(
        job_id, attempt, status=Job.Status.FAILED, error=reason[:2000], finished_at=timezone.now()
    )
    if moved:
        logger.info("Job %s failed: %s", job_id, reason)
        job = Job.objects.get(pk=job_id)
        credits.refund(job, reason)
        transaction.on_commit(
            lambda: _announce_finished(
                job_id, has_webhook=job.webhook_status == "pending", left_queue=job if was_queued else None
            ),
            robust=True,  # the job has ended whatever telling it raises (logged)
        )
    return bool(moved)


@transaction.atomic
def cancel(job: Job) -> Job:
    """Cancel a queued or running job: it ends `canceled` at once and its credits are refunded; a
    queued one leaves its RQ queue, a running one stops at its worker's next denoising step. A
    finished job is left as it is. Returns the job's fresh state (cancel is idempotent)."""
    moved, was_queued = _finish_unfinished(
        job.pk, None, status=Job.Status.CANCELED, error=CANCELED_MESSAGE, finished_at=timezone.now()
    )
    job.refresh_from_db()
    if moved:
        credits.refund(job, "canceled")
        transaction.on_commit(lambda: _canceled(job, was_queued))
    return job


def _canceled(job: Job, was_queued: bool):
    try:
        queue.stop(job)
    except redis.RedisError:
        logger.warning("Could not tell the queue job %s was canceled; its worker skips it anyway", job.pk)
    _announce_finished(job.pk, has_webhook=job.webhook_status == "pending", left_queue=job if was_queued else None)


def requeue(job: Job, reason: str) -> bool:
    """Put an unfinished job back on its queue as a new try (its worker was lost, or Redis lost it)."""
    with transaction.atomic():
        moved = Job.objects.filter(pk=job.pk, attempt=job.attempt, status__in=UNFINISHED).update(
            status=Job.Status.QUEUED,
            attempt=F("attempt") + 1,
            worker_name="",
            progress_step=0,
            progress_total=0,
        )
        if moved:
            logger.warning("Job %s re-queued: %s", job.pk, reason)
            fresh = Job.objects.get(pk=job.pk)
            transaction.on_commit(lambda: _enqueue_or_leave_queued(fresh))
    return bool(moved)


def retry_or_fail(job: Job, reason: str) -> bool:
    """Another try for a job its worker gave up (it died, or is shutting down mid-job), if it has one
    left; else failed and refunded."""
    if job.runs < settings.JOB_MAX_RUNS:
        return requeue(job, reason)
    return fail(job.pk, WORKER_LOST_MESSAGE, attempt=job.attempt)


def _announce_finished(job_id: int, has_webhook: bool, left_queue: Job | None = None):
    """Tell what reads the final job first (its answer is kept for the waiting requests and fetch), wake
    the waiting requests, then tell the listeners (webhooks)."""
    job_settled.send(sender=Job, job=Job.objects.get(pk=job_id))
    try:
        if left_queue is not None:
            queue.remove_from_backlog(left_queue)
        queue.signal_finished(job_id)
    except redis.RedisError:
        logger.warning("Redis unavailable: job %s finished without waking its waiting request", job_id)
    job_finished.send(sender=Job, job_id=job_id, has_webhook=has_webhook)
