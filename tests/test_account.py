"""POST /api/v3/account (beyond v3): plan, credits left, jobs in flight, limits."""

from billing.credits import account_for
from generation.lifecycle import jobs
from tests.test_fetch import _params


def test_account_reports_plan_credits_jobs_and_limits(api, account):
    user, _ = account
    jobs.submit(user=user, params=_params(samples=3), base_url=api.base_url, queue_name="parked")
    body = api.post("/api/v3/account")
    assert body["status"] == "success" and body["email"] == "alice@example.com"
    assert body["plan"]["slug"] == "free" and body["plan"]["monthly_credits"] == account_for(user).plan.monthly_credits
    assert body["credits"] == account_for(user).balance == body["plan"]["monthly_credits"] - 3
    assert body["queued_jobs"] == 1 and body["running_jobs"] == 0
    assert set(body["limits"]) == {"max_queued_jobs", "requests_per_minute", "max_resolution", "max_samples"}
    assert body["credits_renew_at"]


def test_account_needs_a_key(api):
    assert api.post("/api/v3/account", {"key": "nope"})["message"] == "Invalid Api Key"
