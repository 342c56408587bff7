"""Read-only questions about the queue: how long a job will wait, how loaded the system is."""

import time
from datetime import timedelta

from django.conf import settings
from django.db.models import Avg, Count, Q
from django.utils import timezone
from django_rq.settings import get_queues_map

from generation import estimates, heartbeat, queueing
from generation.models import Job

def mean_generation_time() -> float | None:
    """Mean seconds per successful job over the last hour (None when none finished)."""
    hour_ago = timezone.now() - timedelta(hours=1)
    return Job.objects.filter(status=Job.Status.SUCCESS, finished_at__gte=hour_ago).aggregate(
        mean=Avg("generation_time"))["mean"]


def worker_count() -> int:
    """Workers with a fresh heartbeat (RQ's own registry keeps a killed worker for minutes)."""
    return len(heartbeat.live_workers_cached())


def queue_position(job: Job) -> int:
    """Queued jobs of the same queue ahead of this one (0 once it runs): its index on the RQ queue,
    or a database count while it is not on it (being enqueued, or re-queued)."""
    if job.status != Job.Status.QUEUED:
        return 0
    index = queueing.connection().lpos(queueing.queue_key(job.queue_name), job.rq_job_id, rank=-1)  # from the tail
    if index is not None:
        return index
    return Job.objects.filter(status=Job.Status.QUEUED, queue_name=job.queue_name, id__lt=job.id).count()


def progress(job: Job) -> float:
    """0..1 from the scheduler steps the worker reported (1 once finished)."""
    if job.is_finished:
        return 1.0
    return round(job.progress_step / job.progress_total, 3) if job.progress_total else 0.0


def eta_seconds(job: Job, position: int | None = None) -> float:
    """Seconds until `job` is done, from this deployment's measured timings (see generation/estimates.py)."""
    if job.is_finished:
        return 0.0
    if job.status == Job.Status.RUNNING:
        elapsed = (timezone.now() - job.started_at).total_seconds() if job.started_at else 0.0
        done = progress(job)
        remaining = elapsed * (1 - done) / done if done > 0 else job.predicted_seconds - elapsed
        return round(max(0.1, remaining), 2)
    position = queue_position(job) if position is None else position
    return round(estimates.wait_seconds(job.queue_name, position) + job.predicted_seconds, 2)


def system_load() -> dict:
    """The v3 answer: jobs waiting and the seconds a new job would wait for a worker."""
    queues = estimates.backlog()
    waiting = sum(count for count, _ in queues.values())
    wait = estimates.worker_free_in(sum(seconds for _, seconds in queues.values()))
    return {"queue_num": waiting, "queue_time": int(round(wait)), "status": "ok"}


def queue_overview() -> dict:
    """Everything the admin's queue-load page shows, measured now."""
    hour_ago = timezone.now() - timedelta(hours=1)
    queued = dict(Job.objects.filter(status=Job.Status.QUEUED).values_list("queue_name").annotate(n=Count("id")))
    indexes = get_queues_map()
    queues = [{"name": name, "queued": queued.get(name, 0), "rq_length": queueing.queue(name).count,
               "rq_index": indexes.get(name), "wait": round(estimates.wait_seconds(name), 1)}
              for name in settings.GENERATION_QUEUES]
    last_hour = Job.objects.filter(finished_at__gte=hour_ago).aggregate(
        succeeded=Count("id", filter=Q(status=Job.Status.SUCCESS)),
        failed=Count("id", filter=Q(status=Job.Status.FAILED)),
        mean_time=Avg("generation_time", filter=Q(status=Job.Status.SUCCESS)),
    )
    now = time.time()
    workers = [{"name": name, **info, "heartbeat_age": now - info["beat_at"],
                "job_seconds": now - info["job_started"] if info.get("job_started") else None}
               for name, info in heartbeat.live_workers().items()]
    running = Job.objects.filter(status=Job.Status.RUNNING).count()
    total_queued = sum(queued.values())
    return {
        "queues": queues,
        "queued": total_queued,
        "running": running,
        "failed_last_hour": last_hour["failed"],
        "succeeded_last_hour": last_hour["succeeded"],
        "mean_generation_time": last_hour["mean_time"],
        "workers": workers,
        "eta_new_job": queues[-1]["wait"],  # on the lowest-priority queue, before its own run
    }
