"""Hand-written hostile bodies: every one gets a clear answer in the envelope and nothing breaks.
(Hostile images and URLs: tests/test_image_input.py.)"""

import json

import pytest
import requests

from generation.models import Job
from tests.conftest import Api
from tests.http_server import Route

TINY = {"width": 64, "height": 64, "num_inference_steps": 1}


def raw(api, data: bytes | str) -> dict:
    response = api.post_raw("/api/v3/text2img", data=data, headers={"Content-Type": "application/json"})
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    return response.json()


def test_a_10_mb_body_is_read_and_refused_field_by_field(api):
    body = raw(api, json.dumps({"key": api.key, "prompt": "x" * (10 * 1024 * 1024)}))
    assert body["message"] == {"prompt": ["The prompt may not be greater than 20000 characters."]}


def test_a_body_over_the_limit_is_refused_before_parsing(api, settings):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = raw(api, b'{"key": "x", "prompt": "' + b"x" * (limit + 1) + b'"}')
    assert body["status"] == "error" and body["message"].startswith("Request body too large")


@pytest.mark.parametrize("depth", [40, 100_000])
def test_deeply_nested_json(api, depth):
    body = raw(api, "[" * depth + "]" * depth)
    assert body["message"] == "Invalid API Request"
    nested = raw(
        api,
        json.dumps({"key": api.key, "prompt": "x", "track_id": 1}).replace(
            '"track_id": 1', '"extra": ' + '{"a": ' * depth + "1" + "}" * depth
        ),
    )
    assert nested["message"] == "Invalid API Request"


def test_wrong_types_everywhere(api):
    body = api.post(
        "/api/v3/text2img",
        {
            "prompt": {"a": 1},
            "negative_prompt": [1],
            "width": [512],
            "height": {"h": 1},
            "samples": True,
            "num_inference_steps": "many",
            "guidance_scale": None,
            "seed": "abc",
            "scheduler": 7,
            "use_karras_sigmas": "maybe",
            "webhook": 12,
            "track_id": {"x": 1},
            "base64": [],
            "safety_checker": {},
        },
    )
    errors = body["message"]
    assert body["status"] == "error" and body["messege"] == errors
    assert errors["width"] == ["The width must be a number."]
    assert {"prompt", "height", "samples", "num_inference_steps", "seed", "use_karras_sigmas", "track_id"} <= set(
        errors
    )


def test_a_100_kb_prompt_is_refused_with_its_limit(api):
    body = api.post("/api/v3/text2img", {"prompt": "lighthouse " * 10_000, **TINY})
    assert body["message"] == {"prompt": ["The prompt may not be greater than 20000 characters."]}


def test_control_characters_emoji_and_nul_bytes_generate(api):
    prompt = "a \u0007lighthouse\u200b 🌅🦊\x00 at dusk\r\n\t\U0001f600 وَ 灯台"
    body = api.post(
        "/api/v3/text2img",
        {"prompt": prompt, "negative_prompt": "\x00\x01", **TINY, "track_id": "id\x00", "idempotency_key": "k\x00"},
    )
    assert body["status"] == "success", body
    assert body["meta"]["prompt"] == prompt.replace("\x00", "") and body["track_id"] == "id"


def test_a_key_that_is_not_exactly_the_key_is_refused(api):
    """NUL characters are dropped from the fields a prompt is made of, never from the key: with one
    before, in or after it, it is not the key."""
    for key in (api.key + "\x00", "\x00" + api.key, api.key[:10] + "\x00" + api.key[10:]):
        assert Api(api.base_url, key).post("/api/v3/system_load")["message"] == "Invalid Api Key"
    body = api.without_key().post("/api/v3/system_load", {"ke\x00y": api.key})
    assert body["message"] == "Invalid Api Key"
    assert api.post("/api/v3/system_load")["status"] == "ok"


def test_negative_and_huge_sizes_are_clamped(api):
    body = api.post(
        "/api/v3/text2img",
        {
            "prompt": "x",
            "width": -5000,
            "height": 10**30,
            "samples": -3,
            "num_inference_steps": 0,
            "guidance_scale": 1e308,
            "seed": -1,
            "instant_response": "yes",
        },
    )
    meta = body["meta"]
    assert (meta["W"], meta["H"], meta["n_samples"], meta["steps"], meta["guidance_scale"]) == (64, 1024, 1, 1, 20.0)
    assert 0 <= meta["seed"] < 2**32


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(api, constant):
    body = raw(api, '{"key": "%s", "prompt": "x", "width": %s, "track_id": %s}' % (api.key, constant, constant))
    assert body["message"] == "Invalid API Request"
    quoted = api.post("/api/v3/text2img", {"prompt": "x", "width": constant})
    assert quoted["message"] == {"width": ["The width must be a number."]}


def test_duplicate_keys_take_the_last_value(api):
    body = raw(
        api,
        '{"key": "%s", "prompt": "first", "prompt": "second", "width": 64, "height": 64, '
        '"num_inference_steps": 1, "instant_response": "yes"}' % api.key,
    )
    assert body["meta"]["prompt"] == "second"


@pytest.mark.parametrize(
    "value",
    [
        "http://[::1",
        "http://example.com:99999/x.png",
        "ftp://example.com/x.png",
        "javascript:alert(1)",
        "//no-scheme.example/x.png",
    ],
)
def test_malformed_urls(api, value):
    image = api.post("/api/v3/img2img", {"prompt": "x", "init_image": value})
    assert image["status"] == "error" and list(image["message"]) == ["init_image"]
    hook = api.post("/api/v3/text2img", {"prompt": "x", "webhook": value, "instant_response": "yes"})
    assert hook["status"] == "error" and list(hook["message"]) == ["webhook"]


def test_html_served_as_an_image(api, http_server):
    http_server.routes["/cat.png"] = Route(
        body=b"<html><script>alert(1)</script></html>", headers={"Content-Type": "image/png"}
    )
    body = api.post("/api/v3/img2img", {"prompt": "x", "init_image": f"{http_server.url}/cat.png"})
    assert body["message"] == {"init_image": ["The init image must be a PNG, JPEG or WebP image."]}


def test_nothing_was_queued_by_the_refused_bodies(api, account):
    for data in ("[" * 50 + "]" * 50, '{"prompt": NaN}', "not json", ""):
        raw(api, data)
    assert not Job.objects.filter(user=account[0]).exists()
    assert (
        requests.post(api.base_url + "/api/v3/system_load", json={"key": api.key}, timeout=10).json()["status"] == "ok"
    )


@pytest.mark.parametrize("field", ["prompt", "negative_prompt", "track_id", "webhook"])
def test_a_lone_surrogate_is_a_validation_error_and_nothing_is_stored(api, account, field):
    user, _ = account
    fields = json.dumps({"key": api.key, "prompt": "x", **TINY})[:-1]
    body = raw(api, f'{fields}, "{field}": "\\ud800 x"}}')  # JSON may carry a lone surrogate; no database takes it
    assert body["status"] == "error" and body["message"] == {
        field: [f"The {field.replace('_', ' ')} must be valid Unicode text."]
    }
    assert not Job.objects.filter(user=user).exists()


@pytest.mark.parametrize(
    ("field", "value", "meta_key", "clamped"),
    [
        ("seed", "1" + "0" * 400, "seed", 2**32 - 1),
        ("samples", "9" * 400, "n_samples", 4),
        ("width", "-" + "9" * 400, "W", 64),
        ("guidance_scale", "1" + "0" * 400, "guidance_scale", 20.0),
    ],
)
def test_huge_numbers_are_clamped_never_an_exception(api, field, value, meta_key, clamped):
    fields = json.dumps({"key": api.key, "prompt": "x", **{name: v for name, v in TINY.items() if name != field}})[:-1]
    body = raw(api, f'{fields}, "{field}": {value}}}')  # a JSON number no float can hold
    assert body["status"] == "success", body
    assert body["meta"][meta_key] == clamped
    assert len(body["output"]) == body["meta"]["n_samples"]


def test_huge_job_ids_are_unknown_jobs(api):
    assert api.post("/api/v3/fetch/" + "9" * 400)["message"] == "Request not found"
    body = api.post_raw("/api/v3/fetch", data='{"key": "%s", "request_id": %s}' % (api.key, "9" * 400)).json()
    assert body["message"] == "Request not found"


def test_a_host_header_this_server_does_not_serve_gets_the_envelope(api, settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    response = requests.post(
        api.base_url + "/api/v3/system_load", json={"key": api.key}, headers={"Host": "evil.example"}, timeout=30
    )
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["status"] == "error" and "host" in response.json()["message"]
