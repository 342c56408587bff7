"""Webhook delivery: signed, timestamped, retried with backoff, every try recorded on the job.

Deliveries run on a small thread pool in the process that finished the job (the worker), so neither
an API request nor the next generation waits for a slow receiver.
"""

import hashlib
import hmac
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connection

from generation import safe_http
from generation.models import Job, WebhookAttempt

logger = logging.getLogger(__name__)

_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook")
MAX_RESPONSE_BYTES = 64 * 1024


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def payload(job: Job) -> dict:
    from generation.api import responses

    body = responses.success(job) if job.status == Job.Status.SUCCESS else responses.failed(job)
    body.pop("webhook_status", None)
    return {**body, "track_id": job.params.get("track_id")}


def schedule(job_id: int):
    """Deliver the finished job's webhook in the background."""
    _pool.submit(_deliver_logged, job_id)


def _deliver_logged(job_id: int):
    try:
        deliver(job_id)
    except Exception:
        logger.exception("Webhook delivery for job %s crashed", job_id)
    finally:
        connection.close()  # this pool thread's own connection


def deliver(job_id: int) -> bool:
    """POST the result until a 2xx answer or the tries run out; True when delivered."""
    job = Job.objects.select_related("user").get(pk=job_id)
    body = json.dumps(payload(job)).encode()
    delays = settings.WEBHOOK_RETRY_DELAYS
    for number in range(1, len(delays) + 2):
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Signature": sign(job.user.webhook_secret, body),
            "X-Timestamp": timestamp,
            "X-Request-Id": str(job.id),
        }
        started = time.perf_counter()
        status_code, error = None, ""
        try:
            response = safe_http.request("POST", job.params["webhook"], body=body, headers=headers,
                                         max_bytes=MAX_RESPONSE_BYTES, follow_redirects=False)
            status_code = response.status
        except safe_http.UnsafeURL as exc:
            error = str(exc)
        WebhookAttempt.objects.create(job=job, number=number, status_code=status_code, error=error[:500],
                                      duration=time.perf_counter() - started)
        if status_code is not None and 200 <= status_code < 300:
            Job.objects.filter(pk=job.pk).update(webhook_status="delivered")
            return True
        if number <= len(delays):
            time.sleep(delays[number - 1])
    Job.objects.filter(pk=job.pk).update(webhook_status="failed")
    return False
