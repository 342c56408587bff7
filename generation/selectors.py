"""Read-only questions about the queue: how long a job will wait, how loaded the system is."""

from rq import Worker

from generation import queueing
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
    return Worker.count(connection=queueing.connection())


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
