"""Property-based fuzzing of every API operation in the OpenAPI schema (schemathesis): whatever the
body, the answer is HTTP 200 in the contract's envelope, never a 5xx or a traceback. Deterministic
(derandomized), so CI sees the same requests every run."""

import json

import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings

from billing import credits
from billing.models import Plan
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
