"""Job state changes, all in one place: queued -> running -> success | failed.

Each change is a conditional UPDATE on the current status, so two actors (a worker and a sweep, say)
can never both move the same job.
"""

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing import credits
from generation import queueing
from generation.models import Job

logger = logging.getLogger(__name__)

FAILED_MESSAGE = "Failed, Try Again"
UNFINISHED = [Job.Status.QUEUED, Job.Status.RUNNING]


class QueueFull(Exception):
    """The account already has its maximum of unfinished jobs."""

    def __init__(self, limit: int):
        super().__init__(f"at most {limit} queued jobs")
        self.limit = limit


LOST_AFTER_SECONDS = 30  # a queued job RQ does not know after this long was never enqueued


def submit(*, user, api_key=None, kind: str, params: dict, base_url: str, queue_name: str | None = None) -> Job:
    """Record the job, reserve its credits and queue it once the transaction commits.

    Raises QueueFull when the account already has its plan's maximum of unfinished jobs, and
    InsufficientCredits when the balance cannot pay for it; then nothing is recorded or queued.
    The account row is locked while counting, so concurrent requests cannot overshoot either limit.
    """
    with transaction.atomic():
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        account = credits.account_for(user)
        limit = account.plan.max_queued_jobs
        if Job.objects.filter(user=user, status__in=UNFINISHED).count() >= limit:
            raise QueueFull(limit)
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
        )
        credits.reserve(account, job)
        transaction.on_commit(lambda: _enqueue_or_fail(job))
    return job


def _enqueue_or_fail(job: Job):
    try:
        queueing.enqueue(job, timeout=settings.GENERATION_JOB_TIMEOUT)
    except Exception:
        logger.exception("Could not enqueue job %s", job.id)
        fail(job.id, "Queue unavailable, try again")
        job.refresh_from_db()


def start(job_id: int, worker_name: str) -> Job | None:
    """Move a queued job to running; None if it is no longer queued."""
    moved = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
        status=Job.Status.RUNNING, started_at=timezone.now(), worker_name=worker_name[:200]
    )
    return Job.objects.get(pk=job_id) if moved else None


def record_progress(job_id: int, step: int, total: int):
    Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).update(progress_step=step, progress_total=total)


@transaction.atomic
def succeed(job: Job, output_names: list[str], generation_time: float, seeds: list[int], nsfw=None,
            thumbnail: str = "") -> bool:
    """Record the outputs and charge the reserved credits."""
    results = {"seeds": seeds} if nsfw is None else {"seeds": seeds, "nsfw_content_detected": nsfw}
    moved = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
        status=Job.Status.SUCCESS,
        output_names=output_names,
        thumbnail_name=thumbnail,
        generation_time=generation_time,
        params={**job.params, **results},
        progress_step=F("progress_total"),
        finished_at=timezone.now(),
    )
    if moved:
        credits.charge(job)
        transaction.on_commit(lambda: _finished(job.pk, has_webhook=job.webhook_status == "pending"))
    return bool(moved)


@transaction.atomic
def fail(job_id: int, reason: str) -> bool:
    """Mark a queued or running job failed with `reason` (shown to the user) and refund its credits."""
    moved = Job.objects.filter(pk=job_id, status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).update(
        status=Job.Status.FAILED, error=reason[:2000], finished_at=timezone.now()
    )
    if moved:
        logger.info("Job %s failed: %s", job_id, reason)
        job = Job.objects.get(pk=job_id)
        credits.refund(job, reason)
        transaction.on_commit(lambda: _finished(job_id, has_webhook=job.webhook_status == "pending"))
    return bool(moved)


def _finished(job_id: int, has_webhook: bool):
    """Wake the waiting request and send the webhook, once the job reached its final state."""
    queueing.signal_finished(job_id)
    if has_webhook:
        from generation import webhooks

        webhooks.schedule(job_id)


def reconcile(job: Job) -> Job:
    """Fail an unfinished job that nobody will run (RQ lost it, or RQ gave up on it)."""
    if job.is_finished:
        return job
    status = queueing.rq_status(job)
    lost = status is None and (timezone.now() - job.queued_at).total_seconds() > LOST_AFTER_SECONDS
    if lost or status in ("failed", "stopped", "canceled"):
        fail(job.pk, FAILED_MESSAGE)
        job.refresh_from_db()
    return job


def wait(job: Job, timeout: float) -> Job:
    """Wait up to `timeout` seconds for the job to finish and return its fresh state."""
    if not job.is_finished and queueing.wait_finished(job.pk, timeout):
        job.refresh_from_db()
    return job
