"""What each API key used in a period."""

from django.db.models import Count, Q

from accounts.models import ApiKey


def keys_with_usage(user, since):
    """The user's keys, each with its number of jobs since `since` (the account's credits period)."""
    return ApiKey.objects.filter(user=user).annotate(
        jobs_this_period=Count("jobs", filter=Q(jobs__queued_at__gte=since))
    )
