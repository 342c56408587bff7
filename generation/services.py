"""Use cases behind the API views (and the dashboard playground)."""

from django.conf import settings

from billing import credits
from billing.plans import clamp_to_plan
from generation import jobs
from generation.api.errors import RequestNotFound
from generation.models import Job


def request_generation(*, user, api_key=None, kind: str, params: dict, base_url: str,
                       idempotency_key: str = "") -> Job:
    """Queue a generation and wait a short while for it, unless the client asked for no wait.

    Used by the API (with the key) and by the dashboard playground (signed in, no key). A retry
    with the same idempotency key (header or body) gets the original job back.
    """
    instant = params.pop("instant_response", False)
    body_key = params.pop("idempotency_key", "")
    idempotency_key = (idempotency_key or body_key or "").strip()[:200]
    account = credits.account_for(user, loaded=True)
    clamp_to_plan(params, account.plan)
    job = jobs.submit(user=user, api_key=api_key, kind=kind, params=params, base_url=base_url,
                      idempotency_key=idempotency_key, account=account)
    return jobs.wait(job, 0 if instant else settings.GENERATION_WAIT_SECONDS)


def _own_job(user, job_id) -> Job:
    """The user's own job (anyone else's id is answered like an unknown one)."""
    job = Job.objects.filter(pk=job_id, user=user).first() if job_id else None
    if job is None:
        raise RequestNotFound()
    return job


def fetch_job(*, user, job_id) -> Job:
    return jobs.reconcile(_own_job(user, job_id))


def cancel_job(*, user, job_id) -> Job:
    """Cancel the user's own job (a finished one is left alone)."""
    return jobs.cancel(_own_job(user, job_id))
