"""Error bodies of the hosted v3 API: HTTP 200, `status` error, exact messages."""

import pytest
import redis

from billing.credits import account_for
from billing.models import CreditEntry
from config import redis_server
from generation.api.errors import TIP
from generation.lifecycle import jobs
from generation.models import Job
from tests.test_fetch import _params


@pytest.fixture
def anon(api):
    return api


def test_invalid_key(api):
    response = api.post_raw("/api/v3/text2img", json={"key": "nope", "prompt": "x"})
    assert response.status_code == 200
    assert response.json() == {"status": "error", "message": "Invalid Api Key", "tip": TIP}


def test_missing_key(api):
    body = api.post_raw("/api/v3/system_load", json={}).json()
    assert body["status"] == "error" and body["message"] == "Invalid Api Key"


def test_revoked_key_is_refused(api, account):
    user, _ = account
    user.api_keys.update(revoked=True)
    body = api.post("/api/v3/system_load")
    assert body["message"] == "Invalid Api Key"


def test_missing_prompt(api):
    body = api.post("/api/v3/text2img", {"width": 64})
    expected = {"prompt": ["The prompt field is required."]}
    assert body == {"status": "error", "message": expected, "messege": expected}


def test_non_numeric_width(api):
    body = api.post("/api/v3/text2img", {"prompt": "x", "width": "wide", "samples": [1]})
    assert body["status"] == "error"
    assert (
        body["message"]
        == body["messege"]
        == {
            "width": ["The width must be a number."],
            "samples": ["The samples must be a number."],
        }
    )


def test_unknown_scheduler(api):
    body = api.post("/api/v3/text2img", {"prompt": "x", "scheduler": "NoSuchScheduler"})
    assert body["message"] == {"scheduler": ["The selected scheduler is invalid."]}


@pytest.mark.parametrize("raw", ["not json at all", "[1, 2, 3]", '"a string"', '{"key": '])
def test_body_that_is_not_a_json_object(api, raw):
    response = api.post_raw("/api/v3/text2img", data=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.json() == {"status": "error", "message": "Invalid API Request", "tip": TIP}


def test_unknown_api_path_is_json(api):
    response = api.post_raw("/api/v3/nothing_here", json={"key": api.key})
    assert response.status_code == 200
    assert response.json()["status"] == "error"


def test_get_is_answered_in_the_envelope(api):
    import requests

    response = requests.get(api.base_url + "/api/v3/system_load", timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "error"


def dead_redis(settings):
    """This process (the web tier's, in tests) talks to a Redis that is not there."""
    nowhere = f"redis://127.0.0.1:{redis_server.free_port()}/0?socket_connect_timeout=1"
    settings.RQ_QUEUES = {name: {**config, "URL": nowhere} for name, config in settings.RQ_QUEUES.items()}


def test_redis_down_is_answered_service_temporarily_unavailable(api, settings):
    dead_redis(settings)
    response = api.post_raw("/api/v3/system_load", json={"key": api.key})
    assert response.status_code == 200 and response.headers["Retry-After"] == "5"
    text = "Service temporarily unavailable, try again in a few seconds"
    assert response.json() == {"status": "error", "message": text, "messege": text}


def test_a_job_that_cannot_be_queued_fails_at_once_with_its_credits_back(account, settings, tmp_path):
    """Redis answers reads but refuses writes (out of memory) when the admitted job is to be queued."""
    user, _ = account
    balance = account_for(user).balance
    port = redis_server.free_port()
    full = redis_server.start(port, tmp_path / "redis")
    try:
        url = f"redis://127.0.0.1:{port}/0"
        redis.Redis.from_url(url).config_set("maxmemory", 1)  # noeviction: every write is refused
        settings.RQ_QUEUES = {name: {**config, "URL": url} for name, config in settings.RQ_QUEUES.items()}
        job = jobs.submit(user=user, params=_params(), base_url="http://testserver", queue_name="default")
    finally:
        full.terminate()
        full.wait()
    job.refresh_from_db()
    assert (job.status, job.error) == (Job.Status.FAILED, "Queue unavailable, try again")
    assert account_for(user).balance == balance
    assert sorted(CreditEntry.objects.filter(job=job).values_list("entry_type", flat=True)) == ["refund", "reserve"]
