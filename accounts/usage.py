"""The usage period and what each API key used in it."""

from django.db.models import Count, Q
from django.utils import timezone

from accounts.models import ApiKey


def period_start(now=None):
    """The first instant of the current calendar month (the usage period)."""
    now = now or timezone.now()
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def keys_with_usage(user):
    """The user's keys, each with its number of jobs this period."""
    return ApiKey.objects.filter(user=user).annotate(
        jobs_this_period=Count("jobs", filter=Q(jobs__queued_at__gte=period_start()))
    )
