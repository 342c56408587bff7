"""Read-only questions about the queue: how long a job will wait, how loaded the system is."""

import time
from datetime import timedelta

import django_rq
from django.conf import settings
from django.db.models import Avg, Count, Q
from django.utils import timezone
from django_rq.settings import get_queues_map

from generation import heartbeat
from generation.models import Job

DEFAULT_SECONDS_PER_JOB = 10.0
SAMPLE_SIZE = 20


def mean_generation_time() -> float:
    """Mean seconds per job over the last finished jobs (a default before any has run)."""
    recent = (
        Job.objects.filter(status=Job.Status.SUCCESS)
        .order_by("-finished_at")
        .values_list("generation_time", flat=True)[:SAMPLE_SIZE]
    )
    times = list(recent)
    mean = sum(times) / len(times) if times else None
    return mean or DEFAULT_SECONDS_PER_JOB


def worker_count() -> int:
    """Workers with a fresh heartbeat (RQ's own registry keeps a killed worker for minutes)."""
    return len(heartbeat.live_workers())


def queue_position(job: Job) -> int:
    """Queued jobs of the same queue ahead of this one (0 once it runs)."""
    if job.status != Job.Status.QUEUED:
        return 0
    return Job.objects.filter(status=Job.Status.QUEUED, queue_name=job.queue_name, id__lt=job.id).count()


def progress(job: Job) -> float:
    """0..1 from the scheduler steps the worker reported (1 once finished)."""
    if job.is_finished:
        return 1.0
    return round(job.progress_step / job.progress_total, 3) if job.progress_total else 0.0


def eta_seconds(job: Job) -> float:
    """Seconds until `job` is done: the jobs ahead of it, shared among the workers, then its own run."""
    per_job = mean_generation_time()
    if job.status == Job.Status.RUNNING:
        done = job.progress_step / job.progress_total if job.progress_total else 0.0
        return round(per_job * (1 - done), 2)
    ahead = Job.objects.filter(status=Job.Status.QUEUED, id__lt=job.id).count()
    running = Job.objects.filter(status=Job.Status.RUNNING).count()
    workers = max(worker_count(), 1)
    return round(per_job * ((ahead + running) / workers + 1), 2)


def system_load() -> dict:
    queued = Job.objects.filter(status=Job.Status.QUEUED).count()
    workers = max(worker_count(), 1)
    return {"queue_num": queued, "queue_time": int(round(queued * mean_generation_time() / workers)), "status": "ok"}


def queue_overview() -> dict:
    """Everything the admin's queue-load page shows, measured now."""
    hour_ago = timezone.now() - timedelta(hours=1)
    queued = dict(Job.objects.filter(status=Job.Status.QUEUED).values_list("queue_name").annotate(n=Count("id")))
    indexes = get_queues_map()
    queues = [{"name": name, "queued": queued.get(name, 0), "rq_length": django_rq.get_queue(name).count,
               "rq_index": indexes.get(name)} for name in settings.GENERATION_QUEUES]
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
    per_job = mean_generation_time()
    return {
        "queues": queues,
        "queued": total_queued,
        "running": running,
        "failed_last_hour": last_hour["failed"],
        "succeeded_last_hour": last_hour["succeeded"],
        "mean_generation_time": last_hour["mean_time"],
        "workers": workers,
        "eta_new_job": round(per_job * ((total_queued + running) / max(len(workers), 1) + 1), 1),
    }
