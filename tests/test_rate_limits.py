"""Requests per minute per account (its keys together; polling with its own limit) and the queued-jobs
cap, with the contract's bodies."""

from accounts.keys import create_api_key
from billing.models import Plan
from generation.lifecycle import jobs
from tests.conftest import Api
from tests.test_fetch import _params

REQUEST = {"prompt": "x", "width": 64, "height": 64, "num_inference_steps": 1, "instant_response": "yes"}


def set_plan(user, **limits):
    from billing.credits import account_for

    Plan.objects.filter(pk=account_for(user).plan_id).update(**limits)


def test_requests_per_minute(api, account):
    set_plan(account[0], requests_per_minute=2)
    assert api.post("/api/v3/text2img", REQUEST)["status"] == "processing"
    assert api.post("/api/v3/text2img", REQUEST)["status"] == "processing"
    response = api.post_raw("/api/v3/text2img", json={"key": api.key, **REQUEST})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "error" and body["message"] == "Rate limit exceeded" and body["tips"]
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    # polling has its own, higher limit
    assert api.post("/api/v3/system_load")["status"] == "ok"


def test_the_limit_is_per_account_whatever_the_key(api, account, live_server):
    user, _ = account
    set_plan(user, requests_per_minute=2)
    _, second_key = create_api_key(user, name="second")
    assert api.post("/api/v3/text2img", REQUEST)["status"] == "processing"
    assert Api(live_server.url, second_key).post("/api/v3/text2img", REQUEST)["status"] == "processing"
    assert Api(live_server.url, second_key).post("/api/v3/text2img", REQUEST)["message"] == "Rate limit exceeded"


def test_polling_endpoints_have_their_own_higher_limit(api, account, settings):
    set_plan(account[0], requests_per_minute=1)
    settings.API_POLL_REQUESTS_PER_MINUTE = 3
    for path in ("/api/v3/system_load", "/api/v3/account", "/api/v3/fetch/1"):
        assert api.post(path).get("message") != "Rate limit exceeded"
    limited = api.post_raw("/api/v3/system_load", json={"key": api.key})
    assert limited.json()["message"] == "Rate limit exceeded" and limited.headers["Retry-After"]


def test_queued_jobs_cap(api, account):
    user, _ = account
    set_plan(user, max_queued_jobs=2)
    for _ in range(2):
        jobs.submit(user=user, api_key=None, params=_params(), base_url=api.base_url, queue_name="parked")
    body = api.post("/api/v3/text2img", REQUEST)
    assert body["status"] == "error"
    assert body["message"] == "Rate limit exceeded. Maximum 2 queued requests allowed."
