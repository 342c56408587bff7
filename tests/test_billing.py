"""Plans and credits: reserved at enqueue, charged once on success, refunded on failure, never overspent."""

import io
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from diffusers import StableDiffusionXLPipeline
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from billing import credits
from billing.models import Account, CreditEntry, Plan
from generation.lifecycle import jobs
from generation.models import Job
from tests.conftest import Api, make_account
from tests.test_fetch import _params
from tests.test_worker import run_burst

REQUEST = {"prompt": "x", "width": 64, "height": 64, "num_inference_steps": 1, "instant_response": "yes"}


def default_plan(**fields) -> Plan:
    plan = credits.default_plan()
    Plan.objects.filter(pk=plan.pk).update(**fields)
    return Plan.objects.get(pk=plan.pk)


def account_of(user) -> Account:
    return Account.objects.get(user=user)


def assert_ledger_balances(user):
    account = account_of(user)
    assert account.balance == credits.ledger_total(account) and account.balance >= 0


def test_sign_up_gives_the_default_plan_and_its_credits(transactional_db):
    default_plan(monthly_credits=25)
    user, _ = make_account("new@example.com")
    account = account_of(user)
    assert account.plan.is_default and account.balance == 25
    assert list(account.entries.values_list("entry_type", "amount")) == [("grant", 25)]


def test_success_is_reserved_then_charged_once(api, account):
    user, _ = account
    before = account_of(user).balance
    body = api.post("/api/v3/text2img", {**REQUEST, "samples": 3, "instant_response": "no"})
    assert body["status"] == "success"
    assert account_of(user).balance == before - 3
    kinds = list(CreditEntry.objects.filter(job_id=body["id"]).order_by("id").values_list("entry_type", "amount"))
    assert kinds == [("reserve", -3), ("charge", 0)]
    assert_ledger_balances(user)


def test_a_failed_job_is_refunded(api, account, monkeypatch):
    user, _ = account
    before = account_of(user).balance
    job = jobs.submit(user=user, params=_params(samples=2), base_url=api.base_url, queue_name="isolated")
    assert account_of(user).balance == before - 2

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(StableDiffusionXLPipeline, "__call__", broken)
    run_burst("isolated")
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert account_of(user).balance == before
    assert api.post(f"/api/v3/fetch/{job.id}")["status"] == "failed"
    assert_ledger_balances(user)


def test_insufficient_credits_is_refused_and_nothing_is_queued(api, account):
    user, _ = account
    account_row = account_of(user)
    credits._add(account_row, CreditEntry.EntryType.EXPIRE, -(account_row.balance - 1))  # one credit left
    jobs_before = Job.objects.count()
    body = api.post("/api/v3/text2img", {**REQUEST, "samples": 2})
    assert body["status"] == "error"
    assert body["message"].startswith("Insufficient credits.") and body["messege"] == body["message"]
    assert body["billing_url"].endswith("/billing/")
    assert Job.objects.count() == jobs_before
    assert account_of(user).balance == 1
    assert api.post("/api/v3/text2img", REQUEST)["status"] == "processing"  # one image still fits


@pytest.mark.postgres_only
def test_fifty_concurrent_requests_with_credits_for_ten(live_server, worker, transactional_db):
    default_plan(monthly_credits=10, max_queued_jobs=100, requests_per_minute=1000)
    user, key = make_account("burst@example.com")
    url = live_server.url + "/api/v3/text2img"

    def post(_):
        return requests.post(url, json={"key": key, **REQUEST}, timeout=60).json()

    with ThreadPoolExecutor(max_workers=50) as pool:
        bodies = list(pool.map(post, range(50)))

    accepted = [b for b in bodies if b["status"] == "processing"]
    refused = [b for b in bodies if b["status"] == "error"]
    assert len(accepted) == 10 and len(refused) == 40
    assert all(b["message"].startswith("Insufficient credits.") for b in refused)
    assert account_of(user).balance == 0
    assert Job.objects.filter(user=user).count() == 10

    api = Api(live_server.url, key)
    finished = [api.wait_for(b["id"]) for b in accepted]
    assert all(b["status"] == "success" for b in finished)
    assert account_of(user).balance == 0
    assert CreditEntry.objects.filter(account__user=user, entry_type="charge").count() == 10
    assert_ledger_balances(user)


def test_plan_limits_clamp_size_and_samples(api, account):
    user, _ = account
    Plan.objects.filter(pk=account_of(user).plan_id).update(max_resolution=100, max_samples=2)
    body = api.post("/api/v3/text2img", {**REQUEST, "width": 512, "height": 96, "samples": 4, "instant_response": "no"})
    assert body["status"] == "success"
    # both sides scaled alike (512x96 in 100 px), the short one kept at the 64 px minimum
    assert (body["meta"]["W"], body["meta"]["H"], body["meta"]["n_samples"]) == (96, 64, 2)
    assert len(body["output"]) == 2


def test_jobs_go_to_their_plans_priority_queue(api, account):
    user, _ = account
    Plan.objects.filter(pk=account_of(user).plan_id).update(priority=Plan.Priority.HIGH)
    body = api.post("/api/v3/text2img", REQUEST)
    assert Job.objects.get(pk=body["id"]).queue_name == "high"
    assert api.wait_for(body["id"])["status"] == "success"  # workers serve the high queue


def test_free_credits_renew_monthly_and_unused_ones_expire(transactional_db):
    default_plan(monthly_credits=30)
    user, _ = make_account("monthly@example.com")
    account = account_of(user)
    credits._add(account, CreditEntry.EntryType.RESERVE, -12)
    Account.objects.filter(pk=account.pk).update(credits_renew_at=timezone.now() - timedelta(days=1))

    call_command("renew_credits", stdout=io.StringIO())
    account = account_of(user)
    assert account.balance == 30 and account.credits_renew_at > timezone.now()
    assert [e.entry_type for e in account.entries.order_by("id")][-2:] == ["expire", "grant"]
    assert credits.renew_due() == 0  # not due again until next month
    assert_ledger_balances(user)


def test_renewal_skips_subscribers_and_catches_up_missed_months_in_one(transactional_db):
    """A subscriber's credits come with its invoices, not here. An account whose renewal was missed for
    three months (the server was off) gets one new month, dated from now, not three grants."""
    default_plan(monthly_credits=30)
    subscriber, _ = make_account("subscriber@example.com")
    late, _ = make_account("late@example.com")
    due = timezone.now() - timedelta(days=95)
    Account.objects.filter(user=subscriber).update(
        stripe_subscription_id="sub_1", subscription_status="active", credits_renew_at=due, balance=7
    )
    Account.objects.filter(user=late).update(credits_renew_at=due)
    assert credits.renew_due() == 1
    assert account_of(subscriber).balance == 7 and account_of(subscriber).credits_renew_at == due
    account = account_of(late)
    grants = account.entries.filter(entry_type="grant", reason__contains="month from")
    assert grants.count() == 1 and account.balance == 30
    assert timezone.now() < account.credits_renew_at < timezone.now() + timedelta(days=32)
    assert credits.renew_due() == 0
    assert_ledger_balances(late)


def test_admin_assigns_a_plan_and_grants_credits(transactional_db):
    user, _ = make_account("customer@example.com")
    pro = Plan.objects.create(slug="pro", name="Pro", monthly_credits=5000, stripe_price_id="price_pro")
    admin = Client()
    admin.force_login(type(user).objects.create_superuser(email="admin@example.com", password="x"))
    account = account_of(user)
    before = account.balance

    response = admin.post(
        f"/admin/billing/account/{account.pk}/change/",
        {
            "plan": pro.pk,
            "grant_credits": "250",
            "grant_reason": "support ticket 42",
            "entries-TOTAL_FORMS": "0",
            "entries-INITIAL_FORMS": "0",
            "entries-MIN_NUM_FORMS": "0",
            "entries-MAX_NUM_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    account = account_of(user)
    assert account.plan == pro and account.balance == before + 250
    assert account.entries.filter(entry_type="grant", reason__startswith="support ticket 42").exists()
    assert admin.get("/admin/billing/creditentry/").status_code == 200
    assert admin.get("/admin/billing/plan/").status_code == 200


def test_billing_pages_without_stripe(transactional_db, settings):
    settings.STRIPE_SECRET_KEY = ""
    user, _ = make_account("page@example.com")
    Plan.objects.create(
        slug="pro", name="Pro", monthly_credits=5000, stripe_price_id="price_pro", price_label="$20/month"
    )
    client = Client()
    assert "Pro" in client.get("/pricing/").content.decode()  # public
    assert client.get("/billing/").status_code == 302  # sign-in required
    client.force_login(user)
    page = client.get("/billing/").content.decode()
    assert "Billing is not configured" in page and "Free" in page
    assert str(account_of(user).balance) in page
    pricing = client.get("/pricing/").content.decode()
    assert "$20/month" in pricing and "Upgrade to Pro" not in pricing
    response = client.post("/billing/plan/pro/", follow=True)
    assert "Billing is not configured" in response.content.decode()
    assert account_of(user).plan.slug == "free"
    dashboard = client.get("/dashboard/").content.decode()
    assert 'id="credits-left">' + str(account_of(user).balance) in dashboard


def test_billing_forms_need_csrf(transactional_db):
    user, _ = make_account("csrf@example.com")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post("/billing/plan/free/").status_code == 403
    assert client.post("/billing/portal/").status_code == 403
