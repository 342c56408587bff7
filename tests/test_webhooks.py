"""Webhooks: a real local receiver, signatures verified, retries recorded on the job."""

import base64
import hashlib
import hmac
import json
import time

import pytest
from diffusers import StableDiffusionXLPipeline
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from generation.lifecycle import jobs, webhooks
from generation.models import Job, WebhookAttempt
from tests.http_server import Route
from tests.test_fetch import _params
from tests.test_worker import run_burst


def wait_for_requests(server, count, timeout=20):
    deadline = time.monotonic() + timeout
    while len(server.requests) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return server.requests


def wait_for_status(job_id, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Job.objects.get(pk=job_id).webhook_status
        if status != "pending":
            return status
        time.sleep(0.05)
    return "pending"


def verify(request, secret):
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-Signature"], expected)
    assert abs(int(request.headers["X-Timestamp"]) - request.received_at) < 60  # signed when it was sent


def test_receiver_fails_twice_then_succeeds(api, account, http_server):
    user, _ = account
    http_server.routes["/hook"] = [Route(status=500), Route(status=502), Route(status=200)]
    body = api.post(
        "/api/v3/text2img",
        {
            "prompt": "x",
            "width": 64,
            "height": 64,
            "num_inference_steps": 1,
            "webhook": f"{http_server.url}/hook",
            "track_id": 42,
        },
    )
    assert body["status"] == "success"
    assert body["webhook_status"] in ("pending", "delivered")
    assert body["track_id"] == 42

    requests_ = wait_for_requests(http_server, 3)
    assert len(requests_) == 3
    for request in requests_:
        verify(request, user.webhook_secret)
    payload = json.loads(requests_[-1].body)
    assert payload["status"] == "success" and payload["id"] == body["id"]
    assert payload["track_id"] == 42 and payload["output"] == body["output"]

    assert wait_for_status(body["id"]) == "delivered"
    attempts = list(Job.objects.get(pk=body["id"]).webhook_attempts.values_list("number", "status_code"))
    assert attempts == [(1, 500), (2, 502), (3, 200)]
    assert api.post(f"/api/v3/fetch/{body['id']}")["webhook_status"] == "delivered"


def test_receiver_that_never_succeeds_is_given_up_after_four_tries(api, http_server):
    http_server.routes["/hook"] = Route(status=503)
    body = api.post(
        "/api/v3/text2img",
        {
            "prompt": "x",
            "width": 64,
            "height": 64,
            "num_inference_steps": 1,
            "webhook": f"{http_server.url}/hook",
            "track_id": "abc",
        },
    )
    assert wait_for_status(body["id"]) == "failed"
    assert len(http_server.requests) == 4
    assert json.loads(http_server.requests[0].body)["track_id"] == "abc"


def test_failed_job_sends_the_failure(api, account, http_server, monkeypatch):
    user, _ = account
    http_server.routes["/hook"] = Route(status=204)
    job = jobs.submit(
        user=user,
        api_key=None,
        base_url=api.base_url,
        queue_name="isolated",
        params=_params(webhook=f"{http_server.url}/hook", track_id=7),
    )

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(StableDiffusionXLPipeline, "__call__", broken)
    run_burst("isolated")
    (request,) = wait_for_requests(http_server, 1)
    verify(request, user.webhook_secret)
    assert json.loads(request.body) == {
        "status": "failed",
        "id": job.id,
        "message": "Failed, Try Again",
        "messege": "Failed, Try Again",
        "output": [],
        "track_id": 7,
    }


@pytest.mark.parametrize("url", ["http://10.0.0.1/hook", "http://169.254.169.254/", "ftp://example.com/x", "not a url"])
def test_webhook_to_a_forbidden_address_is_a_validation_error(api, url):
    body = api.post("/api/v3/text2img", {"prompt": "x", "webhook": url})
    assert body["status"] == "error"
    assert list(body["message"]) == ["webhook"]


def test_a_webhook_lost_with_its_worker_is_delivered_by_the_sweep(api, account, http_server):
    user, _ = account
    http_server.routes["/hook"] = Route(status=200)
    job = jobs.submit(
        user=user, params=_params(webhook=f"{http_server.url}/hook"), base_url=api.base_url, queue_name="isolated"
    )
    # the job finished, then its worker died before the webhook went out
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.FAILED, error="x", finished_at=job.queued_at.replace(year=2020)
    )
    assert webhooks.redeliver_lost() == 1
    assert wait_for_status(job.id) == "delivered"
    assert webhooks.redeliver_lost() == 0  # delivered, and not again


def test_a_redelivery_continues_the_tries_and_finishes(api, account, http_server):
    """The worker died after a first try: the sweep's redelivery numbers its tries after it, records
    them, and the webhook ends delivered (not pending, POSTed again every 10 minutes)."""
    user, _ = account
    http_server.routes["/hook"] = Route(status=200)
    job = jobs.submit(
        user=user, params=_params(webhook=f"{http_server.url}/hook"), base_url=api.base_url, queue_name="parked"
    )
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.FAILED, error="x", finished_at=job.queued_at.replace(year=2020)
    )
    WebhookAttempt.objects.create(job=job, number=1, status_code=None, error="worker died", duration=0.1)
    assert webhooks.redeliver_lost() == 1
    assert wait_for_status(job.id) == "delivered"
    assert list(job.webhook_attempts.values_list("number", "status_code")) == [(1, None), (2, 200)]


def test_deliveries_carry_a_standard_webhooks_signature_over_id_timestamp_and_body(api, account, http_server):
    user, _ = account
    http_server.routes["/hook"] = Route(status=200)
    api.post(
        "/api/v3/text2img",
        {"prompt": "x", "width": 64, "height": 64, "num_inference_steps": 1, "webhook": f"{http_server.url}/hook"},
    )
    (request,) = wait_for_requests(http_server, 1)
    receiver = Webhook("whsec_" + base64.b64encode(user.webhook_secret.encode()).decode())
    headers = {name.lower(): value for name, value in request.headers.items()}
    assert receiver.verify(request.body, headers)["status"] == "success"  # the receivers' own library
    verify(request, user.webhook_secret)  # and the header existing receivers check
    assert abs(time.time() - int(headers["webhook-timestamp"])) < 300  # stamped when sent: receivers judge age by it
    for changed in ({"webhook-timestamp": str(int(headers["webhook-timestamp"]) + 1)}, {"webhook-id": "job-0"}):
        with pytest.raises(WebhookVerificationError):  # both are signed: a capture cannot be re-dated or re-labelled
            receiver.verify(request.body, {**headers, **changed})


def test_a_canceled_job_tells_its_webhook(api, account, http_server):
    user, _ = account
    http_server.routes["/hook"] = Route(status=200)
    job = jobs.submit(
        user=user,
        params=_params(webhook=f"{http_server.url}/hook", track_id=9),
        base_url=api.base_url,
        queue_name="parked",
    )
    assert api.post(f"/api/v3/cancel/{job.id}")["canceled"] is True
    (request,) = wait_for_requests(http_server, 1)
    body = json.loads(request.body)
    assert (body["status"], body["id"], body["message"], body["canceled"], body["track_id"]) == (
        "failed",
        job.id,
        "Canceled",
        True,
        9,
    )
    verify(request, user.webhook_secret)
    assert wait_for_status(job.id) == "delivered"


def test_a_receiver_that_redirects_is_not_followed(api, account, http_server):
    """A redirect (to a loopback address, say) is a failed try, retried at the same URL; the Location is
    never requested."""
    http_server.routes["/hook"] = [Route(status=302, headers={"Location": f"{http_server.url}/elsewhere"})] * 2 + [
        Route(status=200)
    ]
    http_server.routes["/elsewhere"] = Route(status=200)
    body = api.post(
        "/api/v3/text2img",
        {"prompt": "x", "width": 64, "height": 64, "num_inference_steps": 1, "webhook": f"{http_server.url}/hook"},
    )
    assert wait_for_status(body["id"]) == "delivered"
    assert [request.path for request in http_server.requests] == ["/hook"] * 3
    codes = list(WebhookAttempt.objects.filter(job_id=body["id"]).values_list("status_code", flat=True))
    assert codes == [302, 302, 200]
