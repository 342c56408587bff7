"""Read-only questions about jobs and the queue: where a job stands, how loaded the system is, what
an account used."""

import time
from datetime import timedelta

from django.conf import settings
from django.db.models import Avg, Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone
from django_rq.settings import get_queues_map

from billing import credits
from generation.inputs import library
from generation.models import Job
from generation.queueing import estimates, liveness, queue


def queue_position(job: Job) -> int:
    """Queued jobs of the same queue ahead of this one (0 once it runs): its index on the RQ queue,
    or a database count while it is not on it (being enqueued, or re-queued)."""
    if job.status != Job.Status.QUEUED:
        return 0
    index = queue.position(job)
    if index is not None:
        return index
    return Job.objects.filter(status=Job.Status.QUEUED, queue_name=job.queue_name, id__lt=job.id).count()


def progress(job: Job) -> float:
    """0..1 from the scheduler steps the worker reported (1 once finished)."""
    if job.is_finished:
        return 1.0
    return round(job.progress_step / job.progress_total, 3) if job.progress_total else 0.0


def eta_seconds(job: Job, position: int | None = None) -> float:
    """Seconds until `job` is done, from this deployment's measured timings (see generation/queueing/estimates.py)."""
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
    """The v3 answer (jobs waiting and the seconds a new job would wait for a worker), and (beyond v3) the
    same per checkpoint with waiting jobs ("" is the default one)."""
    queues = queue.backlog()
    per_checkpoint = {}
    for name, (count, seconds) in queues.items():
        entry = per_checkpoint.setdefault(queue.split_queue_name(name)[1], [0, 0.0])
        entry[0] += count
        entry[1] += seconds
    waiting = sum(count for count, _ in queues.values())
    wait = estimates.worker_free_in(sum(seconds for _, seconds in queues.values()))
    default = library.default_checkpoint().public_id if "" in per_checkpoint else ""
    models = {
        checkpoint or default: {"queue_num": count, "queue_time": int(round(estimates.worker_free_in(seconds)))}
        for checkpoint, (count, seconds) in sorted(per_checkpoint.items())
        if count
    }
    return {"queue_num": waiting, "queue_time": int(round(wait)), "status": "ok", "models": models}


def system_details() -> dict:
    """system_load plus what each live worker is (no host names: clients see devices and models only)."""
    workers = [
        {
            "device": info.get("device"),
            "model": info.get("model"),
            "queues": info.get("queues", []),
            "busy": bool(info.get("job_id")),
        }
        for _, info in sorted(liveness.live_workers_cached().items())
    ]
    return {**system_load(), "workers": workers}


def queue_overview() -> dict:
    """Everything the admin's queue-load page shows, measured now."""
    hour_ago = timezone.now() - timedelta(hours=1)
    queued = dict(Job.objects.filter(status=Job.Status.QUEUED).values_list("queue_name").annotate(n=Count("id")))
    indexes = get_queues_map()
    names = list(settings.GENERATION_QUEUES) + sorted(
        name for name in queue.backlog() if queue.split_queue_name(name)[1] and name not in settings.GENERATION_QUEUES
    )
    queues = [
        {
            "name": name,
            "queued": queued.get(name, 0),
            "rq_length": queue.queue(name).count,
            "rq_index": indexes.get(name),
            "wait": round(estimates.wait_seconds(name), 1),
        }
        for name in names
    ]
    last_hour = Job.objects.filter(finished_at__gte=hour_ago).aggregate(
        succeeded=Count("id", filter=Q(status=Job.Status.SUCCESS)),
        failed=Count("id", filter=Q(status=Job.Status.FAILED)),
        mean_time=Avg("generation_time", filter=Q(status=Job.Status.SUCCESS)),
    )
    now = time.time()
    workers = [
        {
            "name": name,
            **info,
            "heartbeat_age": now - info["beat_at"],
            "job_seconds": now - info["job_started"] if info.get("job_started") else None,
        }
        for name, info in liveness.live_workers().items()
    ]
    return {
        "queues": queues,
        "queued": sum(queued.values()),
        "running": Job.objects.filter(status=Job.Status.RUNNING).count(),
        "failed_last_hour": last_hour["failed"],
        "succeeded_last_hour": last_hour["succeeded"],
        "mean_generation_time": last_hour["mean_time"],
        "workers": workers,
        "eta_new_job": queues[len(settings.GENERATION_QUEUES) - 1][
            "wait"
        ],  # on the lowest-priority queue, before its own run
    }


def usage(user, since) -> dict:
    """The user's jobs and images since `since` (the account's credits period)."""
    jobs = Job.objects.filter(user=user, queued_at__gte=since)
    counts = jobs.aggregate(
        jobs=Count("id"),
        succeeded=Count("id", filter=Q(status=Job.Status.SUCCESS)),
        failed=Count("id", filter=Q(status=Job.Status.FAILED)),
    )
    images = sum(len(names) for names in jobs.filter(status=Job.Status.SUCCESS).values_list("output_names", flat=True))
    return {**counts, "images": images}


def jobs_per_day(user, days: int = 30) -> list[dict]:
    """One entry per day (oldest first, zero-filled) with the number of jobs queued that day."""
    today = timezone.now().date()
    first = today - timedelta(days=days - 1)
    rows = (
        Job.objects.filter(user=user, queued_at__date__gte=first)
        .annotate(day=TruncDate("queued_at"))
        .values("day")
        .annotate(count=Count("id"))
    )
    by_day = {row["day"]: row["count"] for row in rows}
    return [{"day": first + timedelta(days=i), "count": by_day.get(first + timedelta(days=i), 0)} for i in range(days)]


def jobs_in_flight(user) -> list[dict]:
    jobs = Job.objects.filter(user=user, status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).order_by("id")[:20]
    return [{"job": job, "eta": eta_seconds(job), "position": queue_position(job)} for job in jobs]


def account_summary(user) -> dict:
    """What `POST /api/v3/account` answers: plan, credits left, jobs in flight, limits."""
    account = credits.account_for(user)
    plan = account.plan
    in_flight = Job.objects.filter(user=user, status__in=[Job.Status.QUEUED, Job.Status.RUNNING])
    return {
        "status": "success",
        "email": user.email,
        "plan": {
            "name": plan.name,
            "slug": plan.slug,
            "monthly_credits": plan.monthly_credits,
            "priority": plan.priority,
        },
        "credits": account.balance,
        "queued_jobs": in_flight.filter(status=Job.Status.QUEUED).count(),
        "running_jobs": in_flight.filter(status=Job.Status.RUNNING).count(),
        "limits": {
            "max_queued_jobs": plan.max_queued_jobs,
            "requests_per_minute": plan.requests_per_minute,
            "max_resolution": plan.max_resolution,
            "max_samples": plan.max_samples,
        },
        "subscription_status": account.subscription_status or None,
        "credits_renew_at": account.credits_renew_at.isoformat()
        if account.credits_renew_at and not account.has_subscription
        else None,
        "current_period_end": account.current_period_end.isoformat() if account.current_period_end else None,
    }


def key_jobs_in_flight(api_key) -> list[Job]:
    """The key's queued and running jobs, oldest first (what A1111's /progress and /interrupt act on)."""
    unfinished = (Job.Status.QUEUED, Job.Status.RUNNING)
    return list(Job.objects.filter(api_key=api_key, status__in=unfinished).order_by("id"))
