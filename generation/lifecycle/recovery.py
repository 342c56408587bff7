"""Making sure every unfinished job finishes: a job whose worker died is re-queued (or failed and
refunded once it has used its tries), and a queued job Redis lost is queued again.

`reconcile` runs when a client asks about one job, so `fetch` never answers "processing" for a lost
job; `sweep` runs on worker start, periodically on one worker, and from `manage.py sweep_jobs`.
"""

import logging
from datetime import timedelta

import redis
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from generation.infra.redis_client import connection
from generation.lifecycle import jobs
from generation.models import Job
from generation.queueing import liveness, queue

logger = logging.getLogger(__name__)

LOST_AFTER_SECONDS = 30  # a queued job RQ does not know after this long was lost by Redis
DATABASE_KEY = "sdxl:database"  # which database the jobs Redis knows belong to


def database_identity() -> str:
    """The database's birth: when its first migration was applied (a recreated database has another)."""
    first = MigrationRecorder.Migration.objects.order_by("id").values_list("applied", flat=True).first()
    return first.isoformat() if first else ""


def claim_redis() -> bool:
    """Make Redis this database's. Jobs' keys are numbered by job id: left by a database that was
    recreated (`var/` deleted, Redis kept), an old job's cached answer, finished flag or cancel flag would
    answer, wake or cancel the new job of that number. Unless Redis is known to hold this database's keys,
    those are forgotten (caches and flags only: a queued RQ job of that number runs the new job, as its
    own would). True when they were."""
    identity = database_identity()
    redis_ = connection()
    try:
        previous = redis_.set(DATABASE_KEY, identity, get=True)
        if previous is not None and previous.decode() == identity:
            return False
        stale = [
            key
            for pattern in (queue.ANSWER_KEY, queue.FINISHED_KEY, queue.CANCEL_KEY)
            for key in redis_.scan_iter(match=pattern.format("*"), count=1000)
        ]
        for start in range(0, len(stale), 1000):
            redis_.delete(*stale[start : start + 1000])
    except redis.RedisError:
        logger.warning("Redis unavailable at start: not checked for another database's jobs")
        return False
    if stale:
        logger.warning("Redis held %d job keys of another database (or none known): forgotten", len(stale))
    return True


def _abandoned(job: Job, now, live_workers=None, heartbeats_since=None) -> bool:
    """Running, but nobody works on it: its worker's heartbeat is gone, or its worker is alive and has
    named other jobs for a heartbeat lifetime since (it could not record this one's end while the
    database was away). Checked one heartbeat lifetime after the job started (a slow start) and after
    Redis's data began (a restarted Redis lost every heartbeat; live workers publish theirs again within
    that time)."""
    if job.status != Job.Status.RUNNING or job.started_at is None:
        return False
    since = max(
        job.started_at.timestamp(), liveness.heartbeats_since() if heartbeats_since is None else heartbeats_since
    )
    if now.timestamp() - since < liveness.ttl():
        return False
    record = live_workers.get(job.worker_name) if live_workers is not None else liveness.record(job.worker_name)
    return record is None or _dropped(job, record)


def _dropped(job: Job, record: dict) -> bool:
    """The live worker's heartbeat, beaten a lifetime after the job started, does not name the job."""
    return (
        "job_ids" in record  # a worker from before heartbeats named their jobs cannot tell
        and job.pk not in record["job_ids"]
        and record["beat_at"] - job.started_at.timestamp() > liveness.ttl()
    )


def _lost(job: Job, now, rq_status: str | None, lost_after: float = LOST_AFTER_SECONDS) -> bool:
    """Queued for a while, yet RQ will not run its try: RQ has no such job (Redis restarted without
    its data) or gave up on it before the job started (its worker lost the database, say)."""
    return (
        job.status == Job.Status.QUEUED
        and now - job.queued_at > timedelta(seconds=lost_after)
        and (rq_status is None or rq_status in queue.GIVEN_UP)
    )


def _recover(job: Job) -> bool:
    """A running job nobody works on."""
    return jobs.retry_or_fail(job, f"worker {job.worker_name or '?'} stopped or dropped it")


def reconcile(job: Job) -> Job:
    """Make sure an unfinished job will finish: re-queue or fail it when nobody will run it."""
    if job.is_finished:
        return job
    now = timezone.now()
    try:
        rq_status = queue.rq_status(job)
        if _abandoned(job, now):
            _recover(job)
        elif _lost(job, now, rq_status):
            jobs.requeue(job, "not on its queue")
        elif job.status == Job.Status.RUNNING and rq_status in queue.GIVEN_UP:
            jobs.fail(job.pk, jobs.FAILED_MESSAGE, attempt=job.attempt)
    except redis.RedisError:
        logger.warning("Redis unavailable while checking job %s", job.pk)
        return job
    job.refresh_from_db()
    return job


def sweep(lost_after: float = LOST_AFTER_SECONDS) -> dict:
    """Recover every job nobody will finish; returns how many jobs it re-queued or recovered.
    `lost_after`: how long a queued job may be unknown to RQ (0 once Redis is known to have lost its data)."""
    now = timezone.now()
    live, since = liveness.live_workers(), liveness.heartbeats_since()
    counts = {"recovered": 0, "requeued": 0}
    for job in Job.objects.filter(status=Job.Status.RUNNING):
        if _abandoned(job, now, live, since):
            counts["recovered"] += _recover(job)
    cutoff = now - timedelta(seconds=lost_after)
    waiting = list(Job.objects.filter(status=Job.Status.QUEUED, queued_at__lt=cutoff).order_by("id"))
    for job, rq_status in zip(waiting, queue.rq_statuses(waiting)):
        if _lost(job, now, rq_status, lost_after):
            counts["requeued"] += jobs.requeue(job, "not on its queue")
    return counts
