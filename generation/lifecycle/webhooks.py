"""Webhook delivery: signed, timestamped, retried with backoff, every try recorded on the job.

Deliveries start when a job with a webhook finishes (`signals.job_finished`) and run on a small thread
pool in the process that finished the job (the worker, usually), so neither an API request nor the next
generation waits for a slow receiver. A delivery lost with its process is sent again by `redeliver_lost`
(workers' periodic maintenance).
"""

import base64
import hashlib
import hmac
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Max
from django.dispatch import receiver
from django.utils import timezone

from generation.answers import hosted
from generation.answers import training as training_answers
from generation.infra import safe_http
from generation.infra.redis_client import connection as redis_connection
from generation.models import Job, WebhookAttempt
from generation.queueing import queue
from generation.signals import job_finished

logger = logging.getLogger(__name__)

_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook")
_stages = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-stages")  # one at a time: in order
MAX_RESPONSE_BYTES = 64 * 1024
LOST_AFTER = timedelta(minutes=10)  # far beyond every try and its timeouts
REDELIVERY_KEY = "sdxl:webhook-redelivery:{}"


def sign(secret: str, body: bytes) -> str:
    """The `X-Signature` existing receivers check: HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def standard_signature(secret: str, message_id: str, timestamp: str, body: bytes) -> str:
    """The Standard Webhooks `webhook-signature`: the id, timestamp and body signed together, so a captured
    delivery cannot be replayed later. Receivers' libraries verify it with the secret `whsec_` +
    base64(the account's webhook secret)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()


def headers_for(job: Job, body: bytes) -> dict:
    timestamp, message_id, secret = str(int(time.time())), f"job-{job.id}", job.user.webhook_secret
    return {
        "Content-Type": "application/json",
        "X-Signature": sign(secret, body),
        "X-Timestamp": timestamp,
        "X-Request-Id": str(job.id),
        "webhook-id": message_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": standard_signature(secret, message_id, timestamp, body),
    }


def payload(job: Job) -> dict:
    if job.parameters.stages:  # a kind that reports stages (training) tells its end as its last stage
        return training_answers.webhook(job)
    body = hosted.success(job) if job.status == Job.Status.SUCCESS else hosted.failed(job)
    body.pop("webhook_status", None)
    return {**body, "track_id": job.params.get("track_id")}


def schedule(job_id: int):
    """Deliver the finished job's webhook in the background (a job with stages after them, in order)."""
    pool = _stages if Job.objects.filter(pk=job_id, details__has_key="stage").exists() else _pool
    pool.submit(_deliver_logged, job_id)


def announce_stage(job_id: int, stage: str):
    """Tell the job's webhook the stage it reached, once (the final one is delivered like any job's end,
    with retries), in the order the stages came."""
    _stages.submit(_deliver_stage_logged, job_id, stage)


def _deliver_stage_logged(job_id: int, stage: str):
    try:
        job = Job.objects.select_related("user").get(pk=job_id)
        _post(job, json.dumps(training_answers.webhook(job, stage)).encode())
    except Exception:
        logger.exception("Stage webhook for job %s crashed", job_id)
    finally:
        connection.close()


def _post(job: Job, body: bytes) -> int | None:
    """One try: POST `body` to the job's webhook, recorded on the job; the answer's status (None: none)."""
    tried = job.webhook_attempts.aggregate(last=Max("number"))["last"] or 0
    started = time.perf_counter()
    status_code, error = None, ""
    try:
        response = safe_http.request(
            "POST",
            job.params["webhook"],
            body=body,
            headers=headers_for(job, body),
            max_bytes=MAX_RESPONSE_BYTES,
            follow_redirects=False,
        )
        status_code = response.status
    except safe_http.UnsafeURL as exc:
        error = str(exc)
    WebhookAttempt.objects.create(
        job=job, number=tried + 1, status_code=status_code, error=error[:500], duration=time.perf_counter() - started
    )
    return status_code


@receiver(job_finished, dispatch_uid="webhooks-on-job-finished")
def _on_job_finished(sender, job_id: int, has_webhook: bool, **kwargs):
    if has_webhook:
        schedule(job_id)


def redeliver_lost(now=None) -> int:
    """Webhooks still pending long after their job finished died with the process delivering them:
    deliver them again (receivers tell repeats apart by X-Request-Id). At most once per LOST_AFTER,
    whichever worker runs it; returns how many."""
    now = now or timezone.now()
    lost = list(
        Job.objects.filter(webhook_status="pending", finished_at__lt=now - LOST_AFTER).values_list("pk", flat=True)[
            :100
        ]
    )
    again = 0
    for job_id in lost:
        if redis_connection().set(REDELIVERY_KEY.format(job_id), 1, nx=True, ex=int(LOST_AFTER.total_seconds())):
            schedule(job_id)
            again += 1
    return again


def _deliver_logged(job_id: int):
    try:
        deliver(job_id)
    except Exception:
        logger.exception("Webhook delivery for job %s crashed", job_id)
    finally:
        connection.close()  # this pool thread's own connection


def deliver(job_id: int) -> bool:
    """POST the result until a 2xx answer or the tries run out; True when delivered. A redelivery numbers
    its tries after the ones already recorded."""
    job = Job.objects.select_related("user").get(pk=job_id)
    body = json.dumps(payload(job)).encode()
    delays = settings.WEBHOOK_RETRY_DELAYS
    for retry in range(len(delays) + 1):
        status_code = _post(job, body)
        if status_code is not None and 200 <= status_code < 300:
            Job.objects.filter(pk=job.pk).update(webhook_status="delivered")
            queue.forget_answer(job.pk)
            return True
        if retry < len(delays):
            time.sleep(delays[retry])
    Job.objects.filter(pk=job.pk).update(webhook_status="failed")
    queue.forget_answer(job.pk)
    return False
