"""Requests per minute per key and the queued-jobs cap, with the contract's bodies."""

from generation import jobs
from tests.test_fetch import _params

REQUEST = {"prompt": "x", "width": 64, "height": 64, "num_inference_steps": 1, "instant_response": "yes"}


def test_requests_per_minute(api, settings):
    settings.API_REQUESTS_PER_MINUTE = 2
    assert api.post("/api/v3/text2img", REQUEST)["status"] == "processing"
    assert api.post("/api/v3/text2img", REQUEST)["status"] == "processing"
    response = api.post_raw("/api/v3/text2img", json={"key": api.key, **REQUEST})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "error" and body["message"] == "Rate limit exceeded" and body["tips"]
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    # polling is not counted
    assert api.post("/api/v3/system_load")["status"] == "ok"


def test_queued_jobs_cap(api, account, settings):
    settings.MAX_QUEUED_JOBS = 2
    user, _ = account
    for _ in range(2):
        jobs.submit(user=user, api_key=None, kind="text2img", params=_params(), base_url=api.base_url,
                    queue_name="parked")
    body = api.post("/api/v3/text2img", REQUEST)
    assert body["status"] == "error"
    assert body["message"] == "Rate limit exceeded. Maximum 2 queued requests allowed."
