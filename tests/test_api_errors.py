"""Error bodies of the hosted v3 API: HTTP 200, `status` error, exact messages."""

import pytest

from generation.api.errors import TIP


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
