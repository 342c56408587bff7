"""Submitting a validated request and waiting for its job, shared by every API (the hosted API's views,
the OpenAI and A1111 front-ends): the job is queued, then the request waits up to `wait` seconds for it,
on the ASGI web tier's event loop (a continuation: no thread, no database connection held) or, on a
WSGI server, here in its thread."""

from generation import services
from generation.inputs import storage
from generation.models import Job
from generation.web import waiting


def submit(request, submission: dict, *, wait: float, answer: dict, idempotency_key="", request_hash="") -> tuple:
    """Queue the request's job: (the job, the continuation headers that hand the rest of the request to
    the event loop; {} when the request is answered now). `answer` tells the continuation how to answer
    once the wait ends (generation/web/waiting.py)."""
    on_loop = waiting.can_continue(request)
    job: Job = services.request_generation(
        user=request.user,
        api_key=request.auth,
        params=submission["params"],
        inputs=submission["inputs"],
        base_url=storage.base_url_for(request),
        wait_seconds=0.0 if on_loop else wait,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
    )
    if on_loop and wait and not job.is_finished:
        return job, waiting.continuation(wait=job.id, timeout=wait, **answer)
    return job, {}
