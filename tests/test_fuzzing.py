"""Property-based fuzzing of every API operation in the OpenAPI schema (schemathesis): whatever the
body, the answer is HTTP 200 in the contract's envelope, never a 5xx or a traceback. Deterministic
(derandomized), so CI sees the same requests every run."""

import json

import pytest
import requests
import schemathesis
from django.conf import settings as django_settings
from django.urls import resolve
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import credits
from billing.models import Plan
from generation import kinds
from generation.kinds.base import V3
from tests.conftest import make_account

EXAMPLES_PER_OPERATION = 120  # 11 operations: about 1,300 requests
STATUSES = {"success", "processing", "error", "failed", "ok"}

schema = schemathesis.openapi.from_dict(
    json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), default=str))
)


@pytest.fixture
def fuzz_key(worker, transactional_db):
    """An account whose accepted jobs are tiny (64 px, one image) and few at a time."""
    plan = credits.default_plan()
    Plan.objects.filter(pk=plan.pk).update(
        max_resolution=64, max_samples=1, max_queued_jobs=3, requests_per_minute=10**6, monthly_credits=10**6
    )
    return make_account("fuzz@example.com")[1]


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_is_in_the_envelope(case, fuzz_key, live_server):
    if isinstance(case.body, dict):
        case.body["key"] = fuzz_key
    response = case.call(base_url=live_server.url, timeout=60)
    assert response.status_code == 200, response.text[:500]
    content_type = {name.lower(): value for name, value in response.headers.items()}["content-type"]
    assert str(content_type).find("application/json") >= 0, (case.path, response.text[:300])
    body = response.json()
    assert isinstance(body, dict) and body.get("status") in STATUSES, body
    assert "Traceback" not in response.text
    if body["status"] in ("error", "failed"):
        assert body.get("message"), body
    assert body.get("message") != "Something went wrong, try again", case.body  # an unhandled exception


# Beyond the schema: every path of every kind (ControlNet, image editing, ...) and both front-ends, with
# the values that once gave 500s — non-finite and huge numbers, NUL, lists and objects where a scalar
# goes, strings where numbers go — and bodies that are not objects, nested deep or split into many parts.
FRAGMENTS = st.one_of(
    st.sampled_from(
        ["1e999", "-1e999", "0", "-4", "1e18", "2.5", '"\\u0000"', '"a\\u0000,a"', '"<lora:a,a:1> x"', "[]", "{}"]
        + ["null", "true", '"0x0"', '"1e999"', '"-1"', "[[[[[[1]]]]]]", '["x", 1]', '{"a": [1]}', '"yes"', '""']
    ),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(max_size=12).map(json.dumps),
)
OPERATION_PATHS = sorted({f"/{family}/{path}".rstrip("/") for family, path, _ in kinds.routes() if family != V3})
FRONTEND_FIELDS = {
    "/sdapi/v1/txt2img": [
        "prompt",
        "negative_prompt",
        "seed",
        "steps",
        "cfg_scale",
        "width",
        "height",
        "batch_size",
        "n_iter",
        "sampler_name",
        "scheduler",
        "enable_hr",
        "hr_scale",
        "hr_upscaler",
        "hr_second_pass_steps",
        "hr_resize_x",
        "denoising_strength",
        "override_settings",
        "send_images",
    ],
    "/sdapi/v1/img2img": ["prompt", "init_images", "mask", "mask_blur", "denoising_strength", "steps", "width"],
    "/sdapi/v1/extra-single-image": ["image", "upscaler_1", "upscaling_resize"],
    "/sdapi/v1/options": ["sd_model_checkpoint"],
    "/v1/images/generations": ["prompt", "model", "n", "size", "quality", "response_format", "output_format"],
}


def _body(fields: dict[str, str]) -> str:
    return "{" + ", ".join(f"{json.dumps(name)}: {value}" for name, value in fields.items()) + "}"


def _fields_of(path: str) -> list[str]:
    view = resolve(path).func.view_class
    return sorted(view.serializer_class().fields)


@pytest.mark.parametrize("path", OPERATION_PATHS)
def test_every_operation_answers_hostile_values_in_its_envelope(path, fuzz_key, live_server):
    names = _fields_of(path)

    @given(st.dictionaries(st.sampled_from(names), FRAGMENTS, min_size=1, max_size=5))
    @settings(max_examples=12, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    def answers(fields):
        response = requests.post(
            live_server.url + path, data=_body({**fields, "key": json.dumps(fuzz_key)}), timeout=60
        )
        assert response.status_code == 200, (fields, response.text[:300])
        body = response.json()
        assert body.get("status") in STATUSES and body.get("message") != "Something went wrong, try again", (
            fields,
            body,
        )

    answers()


@pytest.mark.parametrize("path", sorted(FRONTEND_FIELDS))
def test_the_front_ends_answer_hostile_values_without_a_5xx(path, fuzz_key, live_server):
    @given(st.dictionaries(st.sampled_from(FRONTEND_FIELDS[path]), FRAGMENTS, min_size=1, max_size=5))
    @settings(max_examples=15, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    def answers(fields):
        response = requests.post(
            live_server.url + path,
            data=_body(fields),
            headers={"Authorization": f"Bearer {fuzz_key}", "Content-Type": "application/json"},
            timeout=60,
        )
        assert response.status_code < 500 or response.json().get("error") == "GenerationError", (
            fields,
            response.status_code,
            response.text[:300],
        )
        response.json()

    answers()


BAD_BODIES = ["[]", '"a body"', "3", "[" * 100_000 + "]" * 100_000, '{"prompt": ' + "[" * 5000 + "]" * 5000 + "}"]


@pytest.mark.parametrize("path", ["/api/v6/images/text2img", "/v1/images/generations", "/sdapi/v1/txt2img"])
def test_bodies_that_are_not_objects_or_too_deep_are_refused_in_each_apis_shape(path, fuzz_key, live_server):
    for body in BAD_BODIES:
        response = requests.post(
            live_server.url + path,
            data=body,
            headers={"Authorization": f"Bearer {fuzz_key}", "Content-Type": "application/json"},
            timeout=60,
        )
        assert response.status_code in (200, 400, 422), (path, body[:20], response.status_code)
        if path.startswith("/api/"):
            assert response.json()["status"] == "error"


def test_multipart_bodies_with_too_many_parts_or_bytes_are_too_large(fuzz_key, live_server):
    """OpenAI's edits take multipart forms: 5,000 fields, 300 files or a body over the cap are refused as
    too large (400 in OpenAI's shape), never a 500 or "image is required"."""
    url, headers = live_server.url + "/v1/images/edits", {"Authorization": f"Bearer {fuzz_key}"}
    many_fields = requests.post(url, data={f"f{i}": "x" for i in range(5000)}, headers=headers, timeout=60)
    many_files = requests.post(
        url, files=[("image", (f"{i}.png", b"x", "image/png")) for i in range(300)], headers=headers, timeout=60
    )
    huge = requests.post(
        url,
        files={"image": ("a.png", b"\0" * (django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1024), "image/png")},
        data={"prompt": "x"},
        headers=headers,
        timeout=120,
    )
    for response in (many_fields, many_files, huge):
        assert response.status_code == 400, response.text[:300]
        assert response.json()["error"]["param"] == "body" and "too large" in response.json()["error"]["message"]


# the requests that once answered 500 (or did what they should not), each as its client sent it
REGRESSIONS = [
    ("/v1/images/generations", '{"prompt": "x", "n": 1e999}', 400),
    ("/v1/images/generations", '{"prompt": "x", "size": "0x0"}', 400),
    ("/v1/images/generations", '{"prompt": "x", "model": "a\\u0000b", "size": "64x64"}', 404),
    ("/sdapi/v1/txt2img", '{"prompt": "x", "width": 1e999}', 422),
    ("/sdapi/v1/txt2img", '{"prompt": "x", "batch_size": -4, "n_iter": -1}', 422),
    ("/sdapi/v1/txt2img", '{"prompt": "<lora:a,a:1> x", "width": 64, "height": 64}', 422),
    ("/sdapi/v1/txt2img", '{"prompt": "x", "override_settings": {"sd_model_checkpoint": "a\\u0000b"}}', 422),
    ("/sdapi/v1/img2img", '{"prompt": "x", "init_images": ["x"], "mask": "x", "mask_blur": 1e999}', 422),
    ("/api/v6/images/text2img", '{"prompt": "x", "width": 1e999, "lora_model": "a\\u0000"}', 200),
]


@pytest.mark.parametrize(("path", "body", "status"), REGRESSIONS)
def test_the_requests_that_once_failed_are_refused_in_each_apis_shape(path, body, status, fuzz_key, live_server):
    key = {"Authorization": f"Bearer {fuzz_key}", "Content-Type": "application/json"}
    response = requests.post(live_server.url + path, data=body, headers=key, timeout=60)
    assert response.status_code == status, response.text[:300]
    answer = response.json()
    assert answer.get("status", "error") == "error" and "Something went wrong" not in response.text, answer
