"""Read-only views of an account's plan, credits and limits."""

from billing import credits
from generation.models import Job


def account_summary(user) -> dict:
    """What `POST /api/v3/account` answers: plan, credits left, jobs in flight, limits."""
    account = credits.account_for(user)
    plan = account.plan
    in_flight = Job.objects.filter(user=user, status__in=[Job.Status.QUEUED, Job.Status.RUNNING])
    return {
        "status": "success",
        "email": user.email,
        "plan": {"name": plan.name, "slug": plan.slug, "monthly_credits": plan.monthly_credits,
                 "priority": plan.priority},
        "credits": account.balance,
        "queued_jobs": in_flight.filter(status=Job.Status.QUEUED).count(),
        "running_jobs": in_flight.filter(status=Job.Status.RUNNING).count(),
        "limits": {"max_queued_jobs": plan.max_queued_jobs, "requests_per_minute": plan.requests_per_minute,
                   "max_resolution": plan.max_resolution, "max_samples": plan.max_samples},
        "subscription_status": account.subscription_status or None,
        "credits_renew_at": account.credits_renew_at.isoformat() if account.credits_renew_at and not account.has_subscription else None,
        "current_period_end": account.current_period_end.isoformat() if account.current_period_end else None,
    }
