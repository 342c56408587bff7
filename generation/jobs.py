"""Job state changes, all in one place: queued -> running -> success | failed | canceled (and back
to queued when the worker running a job is lost).

Each change is a conditional UPDATE on the current status (and try), so two actors (a worker and a
sweep, say) can never both move the same job. Every try of a job has its own RQ job id
(`Job.rq_job_id`), so a stale try that RQ reports or runs late can never touch a newer one.
"""

import logging
import time
from datetime import timedelta

import redis
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from billing import credits
from generation import estimates, heartbeat, queueing
from generation.models import Job

logger = logging.getLogger(__name__)

FAILED_MESSAGE = "Failed, Try Again"
WORKER_LOST_MESSAGE = "Failed, Try Again (the worker running it stopped)"
CANCELED_MESSAGE = "Canceled"
UNFINISHED = [Job.Status.QUEUED, Job.Status.RUNNING]
LOST_AFTER_SECONDS = 30  # a queued job RQ does not know after this long was lost by Redis
IDEMPOTENCY_WINDOW = timedelta(hours=24)


def submit(*, user, api_key=None, kind: str, params: dict, base_url: str, queue_name: str | None = None,
           idempotency_key: str = "", account=None) -> Job:
    """Record the job, reserve its credits and queue it once the transaction commits.

    Raises QueueFull when the account already has its plan's maximum of unfinished jobs, and
    InsufficientCredits when the balance cannot pay for it; then nothing is recorded or queued. Both
    are checked and taken in one conditional UPDATE, so concurrent requests cannot overshoot either.
    With an `idempotency_key` the account used in the last 24 hours, the job made then is returned
    instead (nothing new is queued or charged) with `job.replayed` set; two concurrent requests with
    one key meet at the database's unique constraint and the second gets the first's job. `account`
    is the user's, when the caller already has it.
    """
    if idempotency_key:
        earlier = _earlier(user, idempotency_key)
        if earlier:
            return earlier
    account = account or credits.account_for(user)
    cost = credits.job_cost(kind, params.get("samples", 1))
    try:
        with transaction.atomic():
            credits.admit(account, cost)
            job = Job.objects.create(
                user=user,
                api_key=api_key,
                kind=kind,
                params=params,
                seed=params.get("seed", 0),
                output_format=params.get("output_format", "png"),
                base_url=base_url,
                queue_name=queue_name or account.plan.priority,
                webhook_status="pending" if params.get("webhook") else "",
                idempotency_key=idempotency_key,
                predicted_seconds=estimates.predict(kind, params),
            )
            credits.record_reservation(job, cost)
            transaction.on_commit(lambda: _enqueue_or_fail(job))
    except IntegrityError:
        earlier = _earlier(user, idempotency_key) if idempotency_key else None
        if earlier is None:
            raise
        return earlier
    return job


def _earlier(user, idempotency_key: str) -> Job | None:
    """The account's job for this idempotency key, if made in the last 24 hours (an older one gives the
    key up)."""
    earlier = Job.objects.filter(user=user, idempotency_key=idempotency_key).first()
    if earlier and timezone.now() - earlier.queued_at < IDEMPOTENCY_WINDOW:
        earlier.replayed = True
        return earlier
    if earlier:
        Job.objects.filter(pk=earlier.pk).update(idempotency_key="")
    return None


def _enqueue_or_fail(job: Job):
    try:
        queueing.enqueue(job, timeout=settings.GENERATION_JOB_TIMEOUT)
    except Exception:
        logger.exception("Could not enqueue job %s", job.id)
        fail(job.id, "Queue unavailable, try again")
        job.refresh_from_db()


def start(job_id: int, attempt: int, worker_name: str) -> Job | None:
    """Move a queued job to running for this try; None if it is no longer queued for it.

    One statement that also returns the row (UPDATE ... RETURNING, PostgreSQL and SQLite alike): this
    runs once per job on the worker, where the ORM's UPDATE-then-SELECT costs two round trips.
    """
    table = Job._meta.db_table
    moved = list(Job.objects.raw(
        f"UPDATE {table} SET status = %s, started_at = %s, worker_name = %s, runs = runs + 1, "
        f"progress_step = 0, progress_total = 0 WHERE id = %s AND attempt = %s AND status = %s RETURNING *",
        [Job.Status.RUNNING, timezone.now(), worker_name[:200], job_id, attempt, Job.Status.QUEUED],
    ))
    if not moved:
        return None
    estimates.remove_from_backlog(moved[0])
    return moved[0]


def _finish_unfinished(job_id: int, attempt: int | None, **fields) -> tuple[int, bool]:
    """Move a queued or running job to a final state: (rows moved, whether it was still queued)."""
    unfinished = Job.objects.filter(pk=job_id)
    if attempt is not None:
        unfinished = unfinished.filter(attempt=attempt)
    was_queued = unfinished.filter(status=Job.Status.QUEUED).update(**fields)
    moved = was_queued or unfinished.filter(status=Job.Status.RUNNING).update(**fields)
    return moved, bool(was_queued)


def record_progress(job_id: int, step: int, total: int):
    Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).update(progress_step=step, progress_total=total)


@transaction.atomic
def succeed(job: Job, output_names: list[str], generation_time: float, seeds: list[int], nsfw=None,
            thumbnail: str = "", steps: int = 0, pipeline_time: float | None = None) -> bool:
    """Record the outputs (and the scheduler's step count) and charge the reserved credits."""
    results = {"seeds": seeds} if nsfw is None else {"seeds": seeds, "nsfw_content_detected": nsfw}
    moved = Job.objects.filter(pk=job.pk, attempt=job.attempt, status=Job.Status.RUNNING).update(
        status=Job.Status.SUCCESS,
        output_names=output_names,
        thumbnail_name=thumbnail,
        generation_time=generation_time,
        pipeline_time=pipeline_time,
        params={**job.params, **results},
        progress_step=steps,
        progress_total=steps,
        finished_at=timezone.now(),
    )
    if moved:
        credits.charge(job)
        transaction.on_commit(lambda: _finished(job.pk, has_webhook=job.webhook_status == "pending"))
    return bool(moved)


@transaction.atomic
def fail(job_id: int, reason: str, attempt: int | None = None) -> bool:
    """Mark a queued or running job failed with `reason` (shown to the user) and refund its credits.
    With `attempt`, only if the job is still on that try."""
    moved, was_queued = _finish_unfinished(job_id, attempt, status=Job.Status.FAILED, error=reason[:2000],
                                           finished_at=timezone.now())
    if moved:
        logger.info("Job %s failed: %s", job_id, reason)
        job = Job.objects.get(pk=job_id)
        credits.refund(job, reason)
        transaction.on_commit(lambda: _finished(job_id, has_webhook=job.webhook_status == "pending",
                                                left_queue=job if was_queued else None))
    return bool(moved)


@transaction.atomic
def cancel(job: Job) -> Job:
    """Cancel a queued or running job: it ends `canceled` at once and its credits are refunded; a
    queued one leaves its RQ queue, a running one stops at its worker's next denoising step. A
    finished job is left as it is. Returns the job's fresh state (cancel is idempotent)."""
    moved, was_queued = _finish_unfinished(job.pk, None, status=Job.Status.CANCELED, error=CANCELED_MESSAGE,
                                           finished_at=timezone.now())
    job.refresh_from_db()
    if moved:
        credits.refund(job, "canceled")
        transaction.on_commit(lambda: _canceled(job, was_queued))
    return job


def _canceled(job: Job, was_queued: bool):
    try:
        queueing.stop(job)
    except redis.RedisError:
        logger.warning("Could not tell the queue job %s was canceled; its worker skips it anyway", job.pk)
    _finished(job.pk, has_webhook=job.webhook_status == "pending", left_queue=job if was_queued else None)


def requeue(job: Job, reason: str) -> bool:
    """Put an unfinished job back on its queue as a new try (its worker was lost, or Redis lost it)."""
    with transaction.atomic():
        moved = Job.objects.filter(pk=job.pk, attempt=job.attempt, status__in=UNFINISHED).update(
            status=Job.Status.QUEUED, attempt=F("attempt") + 1, worker_name="", progress_step=0, progress_total=0,
        )
        if moved:
            logger.warning("Job %s re-queued: %s", job.pk, reason)
            fresh = Job.objects.get(pk=job.pk)
            transaction.on_commit(lambda: _enqueue_or_fail(fresh))
    return bool(moved)


def _retry_or_fail(job: Job, reason: str) -> bool:
    """Another try for a job its worker gave up, if it has one left; else failed and refunded."""
    if job.runs < settings.JOB_MAX_RUNS:
        return requeue(job, reason)
    return fail(job.pk, WORKER_LOST_MESSAGE, attempt=job.attempt)


def recover(job: Job) -> bool:
    """A running job whose worker is gone."""
    return _retry_or_fail(job, f"worker {job.worker_name or '?'} stopped")


def release(job: Job) -> bool:
    """The worker is shutting down in the middle of this job: queue it again for another worker."""
    return _retry_or_fail(job, "worker shut down")


def _finished(job_id: int, has_webhook: bool, left_queue: Job | None = None):
    """Wake the waiting request and send the webhook, once the job reached its final state."""
    try:
        if left_queue is not None:
            estimates.remove_from_backlog(left_queue)
        queueing.signal_finished(job_id)
    except redis.RedisError:
        logger.warning("Redis unavailable: job %s finished without waking its waiting request", job_id)
    if has_webhook:
        from generation import webhooks

        webhooks.schedule(job_id)


def _abandoned(job: Job, now, live_workers=None) -> bool:
    """Running, but its worker's heartbeat is gone (checked after a grace period for slow starts)."""
    if job.status != Job.Status.RUNNING or job.started_at is None:
        return False
    if now - job.started_at < timedelta(seconds=heartbeat.ttl()):
        return False
    alive = job.worker_name in live_workers if live_workers is not None else heartbeat.is_alive(job.worker_name)
    return not alive


GIVEN_UP = ("failed", "stopped", "canceled")  # RQ states of a try that will not run again


def _lost(job: Job, now, rq_status: str | None) -> bool:
    """Queued for a while, yet RQ will not run its try: RQ has no such job (Redis restarted without
    its data) or gave up on it before the job started (its worker lost the database, say)."""
    return (job.status == Job.Status.QUEUED and now - job.queued_at > timedelta(seconds=LOST_AFTER_SECONDS)
            and (rq_status is None or rq_status in GIVEN_UP))


def reconcile(job: Job) -> Job:
    """Make sure an unfinished job will finish: re-queue or fail it when nobody will run it.

    Called when a client asks about a job, so `fetch` never answers "processing" for a lost job.
    """
    if job.is_finished:
        return job
    now = timezone.now()
    try:
        rq_status = queueing.rq_status(job)
        if _abandoned(job, now):
            recover(job)
        elif _lost(job, now, rq_status):
            requeue(job, "not on its queue")
        elif job.status == Job.Status.RUNNING and rq_status in GIVEN_UP:
            fail(job.pk, FAILED_MESSAGE, attempt=job.attempt)
    except redis.RedisError:
        logger.warning("Redis unavailable while checking job %s", job.pk)
        return job
    job.refresh_from_db()
    return job


def sweep(lost_after: float = LOST_AFTER_SECONDS) -> dict:
    """Recover every job nobody will finish. Runs on worker start, periodically on one worker, and
    from `manage.py sweep_jobs`; returns how many jobs it re-queued or failed. `lost_after`: how long
    a queued job may be unknown to RQ (0 once Redis is known to have lost its data)."""
    now = timezone.now()
    live = heartbeat.live_workers()
    counts = {"recovered": 0, "requeued": 0}
    for job in Job.objects.filter(status=Job.Status.RUNNING).exclude(worker_name__in=list(live)):
        if _abandoned(job, now, live):
            counts["recovered"] += recover(job)
    cutoff = now - timedelta(seconds=lost_after)
    waiting = list(Job.objects.filter(status=Job.Status.QUEUED, queued_at__lt=cutoff).order_by("id"))
    for job, rq_status in zip(waiting, queueing.rq_statuses(waiting)):
        if rq_status is None or rq_status in GIVEN_UP:
            counts["requeued"] += requeue(job, "not on its queue")
    counts["webhooks"] = _redeliver_lost_webhooks(now)
    return counts


WEBHOOK_LOST_AFTER = timedelta(minutes=10)  # far beyond every try and its timeouts


def _redeliver_lost_webhooks(now) -> int:
    """Webhooks still pending long after their job finished died with the worker delivering them:
    deliver them again (receivers tell repeats apart by X-Request-Id)."""
    from generation import webhooks

    lost = list(Job.objects.filter(webhook_status="pending", finished_at__lt=now - WEBHOOK_LOST_AFTER)
                .values_list("pk", flat=True)[:100])
    conn, again = queueing.connection(), 0
    for job_id in lost:  # at most once per WEBHOOK_LOST_AFTER, whichever worker sweeps
        if conn.set(f"sdxl:webhook-redelivery:{job_id}", 1, nx=True, ex=int(WEBHOOK_LOST_AFTER.total_seconds())):
            webhooks.schedule(job_id)
            again += 1
    return again


def wait(job: Job, timeout: float) -> Job:
    """Wait up to `timeout` seconds for the job to finish and return its fresh state. (A wake-up for
    a job that is still unfinished, a stale signal say, goes back to waiting.)"""
    deadline = time.monotonic() + timeout
    while not job.is_finished and queueing.wait_finished(job.pk, deadline - time.monotonic()):
        job.refresh_from_db()
    return job
