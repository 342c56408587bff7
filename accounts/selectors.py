"""Read-only views of an account: usage this period, per day, per key, and the jobs in flight."""

from datetime import timedelta

from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import ApiKey
from generation import selectors as generation_selectors
from generation.models import Job


def period_start(now=None):
    """The first instant of the current calendar month (the usage period)."""
    now = now or timezone.now()
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def usage(user) -> dict:
    jobs = Job.objects.filter(user=user, queued_at__gte=period_start())
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


def keys_with_usage(user):
    return ApiKey.objects.filter(user=user).annotate(
        jobs_this_period=Count("jobs", filter=Q(jobs__queued_at__gte=period_start()))
    )


def jobs_in_flight(user) -> list[dict]:
    jobs = Job.objects.filter(user=user, status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).order_by("id")[:20]
    return [{"job": job, "eta": generation_selectors.eta_seconds(job),
             "position": generation_selectors.queue_position(job)} for job in jobs]
