"""Use cases behind the API views and the dashboard: submit a job, fetch it, cancel it.

They raise domain errors (JobNotFound, InvalidInput, jobs.IdempotencyConflict, billing's QueueFull and
InsufficientCredits) that the API maps to its error bodies (generation/api/errors.py).
"""

import hashlib
import json
import math
import time
from contextlib import contextmanager
from decimal import Decimal

from django.conf import settings

from billing import credits
from generation import kinds
from generation.answers import hosted
from generation.infra import images, redis_client, safe_http
from generation.inputs import library, storage
from generation.kinds import training
from generation.kinds.base import InvalidInput, JobParams
from generation.lifecycle import jobs, recovery
from generation.models import Job, LibraryModel
from generation.queueing import liveness, monitoring, queue

TRAINING = training.KIND.name
MAX_JOB_ID = 2**63 - 1  # job ids are 64-bit: a larger one (a path may carry any digits) is no job


class JobNotFound(Exception):
    """No job of this user has that id."""


def request_generation(
    *,
    user,
    params: JobParams,
    base_url: str,
    inputs: dict | None = None,
    api_key=None,
    wait_seconds: float = 0.0,
    idempotency_key: str = "",
    request_hash: str = "",
) -> Job:
    """Queue a job and wait up to `wait_seconds` for it here (in this thread: a WSGI server; the ASGI web
    tier waits on its event loop instead, generation/web/waiting.py, and passes 0).

    Used by the API (with the key) and by the dashboard playground (signed in, no key). In order, so
    that a refused or replayed request does no work: a retry with the same idempotency key gets the
    original job back; the plan's limits clamp the parameters; the account must be able to pay; only
    then are input images (`inputs`: parameter field -> images.ImageSource) fetched, and they are
    stored once the job is admitted.
    """
    idempotency_key = idempotency_key.strip()[:200]
    if idempotency_key and (earlier := jobs.replayed(user, idempotency_key, request_hash)):
        return wait(earlier, wait_seconds)
    account = credits.account_for(user)  # its balance now, not as authentication found it
    plan = account.plan
    params.clamp_to_plan(plan.max_resolution, plan.max_samples)
    multiplier, queue_name = _models_and_queue(params, plan, user)
    credits.check_admissible(account, math.ceil(kinds.cost(params) * multiplier))
    _check_upscaler(params)
    _check_webhook(params.webhook)
    _check_in_flight(user, params, plan)
    if params.makes_model:
        _check_owned_quota(user, plan)
        params.fit_to_model(library.native_side(params.checkpoint))
    fetched = _fetch_inputs(user, inputs or {}, base_url, params.input_pixel_budget())
    params.complete({field: source.size for field, source in fetched.items()})
    params.clamp_to_plan(plan.max_resolution, plan.max_samples)  # sizes that came from the input images
    params.check_plan(plan)
    job = jobs.submit(
        user=user,
        api_key=api_key,
        params=params,
        base_url=base_url,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        account=account,
        inputs=fetched,
        price=math.ceil(kinds.cost(params) * multiplier),  # as the plan's limits left the parameters
        queue_name=queue_name,
    )
    return wait(job, wait_seconds)


def request_hash(kind: str, body: dict) -> str:
    """What an Idempotency-Key stands for: the operation and every field the client sent (its key and
    the idempotency key itself aside)."""
    fields = {name: value for name, value in body.items() if name not in ("key", "idempotency_key")}
    canonical = json.dumps({"kind": kind, "fields": fields}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _models_and_queue(params: JobParams, plan, user) -> tuple[Decimal, str]:
    """The credit multiplier of the library models the job uses and its RQ queue: the plan's priority,
    on the queue of its checkpoint when that is not the default one (a kind with a queue of its own,
    training, loads its checkpoint itself). A checkpoint that no live worker has held for
    CHECKPOINT_STALE_SECONDS is refused rather than left waiting."""
    library.fill_operation_model(params, plan, user)
    if not params.chooses_models:
        return Decimal(1), params.queue or plan.priority
    multiplier, is_default = library.choose(params, plan, user)
    if params.queue:
        return multiplier, params.queue
    checkpoint = "" if is_default else params.checkpoint
    if checkpoint and not liveness.checkpoint_served_within(checkpoint, settings.CHECKPOINT_STALE_SECONDS):
        raise InvalidInput("model_id", f"No worker serves the model {checkpoint!r} right now; try again later.")
    return multiplier, queue.queue_name(plan.priority, checkpoint)


def _check_upscaler(params: JobParams):
    """A job that upscales needs its upscalers' weights installed, or demo mode (then `meta` says so)."""
    for model_id, field in params.upscalers():
        state = library.upscaler_state(model_id)
        if state == "missing":
            raise InvalidInput(field, f"The upscaler {model_id} is not installed on this deployment.")
        params.demo_upscaler = params.demo_upscaler or state == "demo"


def _check_webhook(url: str | None):
    """Refuse a webhook we would never be allowed to call (the same rules as input URLs)."""
    if url is None:
        return
    try:
        parts, port = safe_http.split_url(url)
        safe_http.vetted_address(parts.hostname, port)
    except (safe_http.UnsafeURL, ValueError) as exc:
        raise InvalidInput("webhook", "The webhook must be a public http(s) URL.") from exc


def _check_in_flight(user, params: JobParams, plan):
    """A kind that limits how many of its jobs an account runs at once (trainings) refuses one more."""
    limit = params.max_in_flight(plan)
    if limit is None:
        return
    running = Job.objects.filter(user=user, kind=params.kind, status__in=jobs.UNFINISHED).count()
    if running >= limit:
        raise InvalidInput(
            "images" if params.makes_model else "prompt",
            f"Your plan runs {limit} of these at once and {running} are queued or running; try again when one ends.",
        )


def _check_owned_quota(user, plan):
    try:
        library.check_owned_quota(user, plan, adding=1)  # room for a model's first byte, at least
    except library.OwnedQuotaFull as exc:
        raise InvalidInput(
            "training",
            f"Your trained models use {exc.used // 2**20} MB of your plan's {exc.quota // 2**20} MB: "
            "delete one (finetune/delete) to train another.",
        ) from exc


FETCHING_KEY = "sdxl:fetching:{}"


def _fetch_inputs(user, inputs: dict, base_url: str, budget: int) -> dict:
    """Each input image, fetched and checked from its header (decoded only by the worker); InvalidInput
    names the request field of one that is not fit, or of the one that takes the request past
    INPUT_REQUEST_MAX_PIXELS in all. Our own output URLs are read from storage. An account fetches at
    most FETCHES_PER_ACCOUNT other URLs at once, so slow servers it points at cannot hold the web tier
    (each fetch is bounded by SAFE_HTTP_TOTAL_TIMEOUT)."""
    for source in inputs.values():
        if source.url:
            source.stored = storage.own_output_name(source.url, base_url)
    urls = [source for source in inputs.values() if source.url and not source.stored]
    with _fetch_slot(user, urls[0].field if urls else ""):
        fetched, pixels = {}, 0
        for field, source in inputs.items():
            try:
                found = storage.fetch_archive(source) if source.archive else [storage.fetch(source)]
            except images.ImageInputError as exc:
                raise InvalidInput(source.field, str(exc)) from exc
            for index, image in enumerate(found, start=1):
                fetched[field if len(found) == 1 and not source.archive else f"{field}_{index}"] = image
                pixels += math.prod(image.size)
                if pixels > budget:
                    raise InvalidInput(
                        source.field,
                        f"The images of this request have too many pixels in all: at most {budget}.",
                    )
        return fetched


@contextmanager
def _fetch_slot(user, field: str):
    """One of the account's concurrent fetch slots for a request with URLs (`field` names the first)."""
    if not field:
        yield
        return
    key, connection = FETCHING_KEY.format(user.pk), redis_client.connection()
    with connection.pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, int(settings.SAFE_HTTP_TOTAL_TIMEOUT * 4) + 10)  # a crashed request's slot expires
        taken, _ = pipe.execute()
    try:
        if taken > settings.FETCHES_PER_ACCOUNT:
            raise InvalidInput(field, "Too many images are being fetched for this account at once; try again shortly.")
        yield
    finally:
        connection.decr(key)


def wait(job: Job, timeout: float) -> Job:
    """Wait up to `timeout` seconds for the job to finish and return its fresh state. (A wake-up for
    a job that is still unfinished, a stale signal say, goes back to waiting.)"""
    deadline = time.monotonic() + timeout
    while not job.is_finished and queue.wait_finished(job.pk, deadline - time.monotonic()):
        job.refresh_from_db()
    return job


def _own_job(user, job_id) -> Job:
    """The user's own job (anyone else's id is answered like an unknown one)."""
    job = Job.objects.filter(pk=job_id, user=user).first() if job_id and int(job_id) <= MAX_JOB_ID else None
    if job is None:
        raise JobNotFound()
    return job


def fetch_job(*, user, job_id) -> Job:
    """The user's job, re-queued or failed first when nobody would finish it."""
    return recovery.reconcile(_own_job(user, job_id))


def answer_after_wait(job_id: int, fetch_path: str, endpoint: str) -> dict:
    """A generation request's answer once its wait on the event loop ended (finished or not), counted
    for /metrics under its `endpoint`."""
    body = hosted.for_request(Job.objects.get(pk=job_id), fetch_path)
    monitoring.count_request(endpoint, body["status"])
    return body


def stream_snapshot(job_id: int, form: str) -> dict:
    """Where a streamed job stands (a lost one re-queued or failed first, as fetch does): its body in the
    stream's `form` ("api": fetch's answer; "dashboard": the job page's status), the event that carries
    it, and what the stream needs to follow it."""
    job = recovery.reconcile(Job.objects.get(pk=job_id))
    if form == "dashboard":
        body, name = hosted.dashboard_status(job), "status"
    else:
        body, name = hosted.for_fetch(job), "result" if job.is_finished else "processing"
    return {
        "body": body,
        "event": (name, body),
        "finished": job.is_finished,
        "format": form,
        "queue_name": job.queue_name,
        "rq_job_id": job.rq_job_id,
    }


def fetch_answer(*, user, job_id) -> dict:
    """What fetch answers for the user's job. A finished job's answer is kept in Redis, so fetching it
    again costs no database query (forgotten when it changes: generation/queueing/queue.py's forget_answer)."""
    if job_id and int(job_id) <= MAX_JOB_ID and (cached := queue.cached_answer(int(job_id), user.pk)):
        return cached
    job = fetch_job(user=user, job_id=job_id)
    body = hosted.for_fetch(job)
    if job.is_finished:
        queue.cache_answer(job.id, user.pk, body, seconds=min(queue.ANSWER_TTL, storage.seconds_kept(job)))
    return body


def cancel_job(*, user, job_id) -> Job:
    """Cancel the user's own job (a finished one is left alone)."""
    return jobs.cancel(_own_job(user, job_id))


def store_upload(*, user, source: images.ImageSource, base_url: str) -> dict:
    """image_editing/base64_to_url: the image kept (free, within the account's upload quota) and its URL,
    which later requests may send (it is read from storage, like an output of this server)."""
    upload, url = storage.save_upload(user, storage.fetch(source), base_url)
    return {"status": "success", "id": upload.id, "output": [url], "proxy_links": [url]}


# trainings ----------------------------------------------------------------------------------------


def own_training(user, training_id: str) -> Job:
    """The user's own training by its id, re-queued or failed first when nobody would finish it
    (anyone else's answered like an unknown one)."""
    job = Job.objects.filter(user=user, kind=TRAINING, params__training_id=str(training_id)[:100]).first()
    if job is None:
        raise JobNotFound()
    return recovery.reconcile(job)


def trainings(user) -> list[Job]:
    return list(Job.objects.filter(user=user, kind=TRAINING).order_by("-id")[:200])


def cancel_training(user, training_id: str) -> Job:
    return jobs.cancel(own_training(user, training_id))


def delete_training(user, training_id: str):
    """The training ends (refunded when it had not), its model leaves the library and its files go."""
    job = jobs.cancel(own_training(user, training_id))
    LibraryModel.objects.filter(owner=user, public_id=job.params["training_id"]).delete()
    storage.delete_files(job)
    job.delete()
