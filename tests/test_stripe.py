"""Stripe: Checkout, plan changes and the portal against a local stand-in for Stripe's API, and our
webhook endpoint fed events signed with a test secret (bad signature, replay, out of order)."""

import json
import time

import psycopg
import pytest
import requests
from django.db import connection
from django.test import Client

from billing.models import Account, CreditEntry, StripeEvent
from tests.conftest import make_account
from tests.stripe_server import signature_header


@pytest.fixture
def customer(plans):
    user, _ = make_account("payer@example.com")
    client = Client()
    client.force_login(user)
    return user, client


def account_of(user) -> Account:
    return Account.objects.select_related("plan").get(user=user)


def subscribe(stripe_server, client, slug="pro"):
    """Pick a plan, go through (stand-in) Checkout, land back on the billing page."""
    response = client.post(f"/billing/plan/{slug}/")
    assert response.status_code == 302 and response["Location"].startswith(stripe_server.url + "/pay/")
    paid = requests.get(response["Location"], allow_redirects=False, timeout=30)
    assert paid.status_code == 303 and paid.headers["Location"].endswith("/billing/?checkout=success")
    return paid.headers["Location"]


def test_checkout_to_credits(stripe_server, customer):
    user, client = customer
    before = account_of(user).balance
    client.get("/pricing/")
    assert "Upgrade to Pro" in client.get("/pricing/").content.decode()

    subscribe(stripe_server, client)

    call = next(params for method, path, params in stripe_server.calls if path == "/v1/checkout/sessions")
    assert call["mode"] == "subscription" and call["line_items"][0]["price"] == "price_pro"
    account = account_of(user)
    assert account.plan.slug == "pro" and account.subscription_status == "active"
    assert account.stripe_subscription_id in stripe_server.subscriptions
    assert account.balance == before + 5000
    page = client.get("/billing/?checkout=success").content.decode()
    assert 'id="plan-name">Pro<' in page and f'id="balance">{before + 5000}<' in page
    assert "Invoices and payment methods" in page


def test_upgrade_and_downgrade_an_existing_subscription(stripe_server, customer):
    user, client = customer
    subscribe(stripe_server, client)
    balance = account_of(user).balance

    client.post("/billing/plan/studio/")
    account = account_of(user)
    assert account.plan.slug == "studio" and account.balance == balance + 20000
    update = [
        params
        for method, path, params in stripe_server.calls
        if method == "POST" and path.startswith("/v1/subscriptions/")
    ][-1]
    assert update["items"][0]["price"] == "price_studio" and update["proration_behavior"] == "create_prorations"

    client.post("/billing/plan/free/")  # ends with the period
    assert stripe_server.subscriptions[account.stripe_subscription_id]["cancel_at_period_end"] is True
    assert account_of(user).plan.slug == "studio"
    stripe_server.end_period(account.stripe_subscription_id)
    account = account_of(user)
    assert account.plan.slug == "free" and not account.has_subscription
    assert account.balance == balance + 20000  # paid credits stay


def test_portal_redirects_to_stripe(stripe_server, customer):
    _, client = customer
    response = client.post("/billing/portal/")
    assert response.status_code == 302 and response["Location"].startswith(stripe_server.url + "/portal/cus_")


def test_stripe_down_changes_nothing(stripe_server, customer):
    user, client = customer
    stripe_server.down = True
    response = client.post("/billing/plan/pro/", follow=True)
    assert "could not be reached" in response.content.decode()
    assert account_of(user).plan.slug == "free"


def test_bad_signature_is_refused_and_changes_nothing(stripe_server, customer):
    user, client = customer
    subscribe(stripe_server, client)
    account = account_of(user)
    sub = stripe_server.subscriptions[account.stripe_subscription_id]
    events_before = StripeEvent.objects.count()
    event = stripe_server.event("invoice.paid", stripe_server.invoice(sub))

    assert stripe_server.deliver(event, secret="whsec_wrong") == 400
    unsigned = requests.post(stripe_server.webhook_url, data=b"{}", timeout=10)
    assert unsigned.status_code == 400
    assert account_of(user).balance == account.balance and StripeEvent.objects.count() == events_before


def test_a_signature_from_the_future_is_refused(stripe_server, customer):
    user, client = customer
    subscribe(stripe_server, client)
    account = account_of(user)
    event = stripe_server.event(
        "invoice.paid", stripe_server.invoice(stripe_server.subscriptions[account.stripe_subscription_id])
    )
    payload = json.dumps(event).encode()
    for skew in (3600, -3600):  # an hour ahead is as suspect as an hour late
        header = signature_header(payload, stripe_server.webhook_secret, int(time.time()) + skew)
        answer = requests.post(
            stripe_server.webhook_url, data=payload, headers={"Stripe-Signature": header}, timeout=10
        )
        assert answer.status_code == 400
    assert account_of(user).balance == account.balance
    assert stripe_server.deliver(event) == 200 and account_of(user).balance == account.balance + 5000


@pytest.mark.parametrize(
    "malformed",
    [
        {"type": "invoice.paid", "data": "a string"},
        {"type": "invoice.paid", "data": {"object": None}},
        {"type": "invoice.paid", "data": {"object": {"customer": "CUSTOMER", "lines": {"data": []}}}},
        {"type": "invoice.paid", "created": "abc", "data": {"object": {"id": "in_1", "customer": "CUSTOMER"}}},
        {"type": "customer.subscription.updated", "data": {"object": {"customer": "CUSTOMER", "status": "active"}}},
        {"type": "customer.subscription.deleted", "data": {"object": {"customer": "CUSTOMER"}}},
    ],
)
def test_a_signed_but_malformed_event_is_refused_and_recorded(stripe_server, customer, malformed):
    """Signed with our secret, so it is Stripe's (or a bug of ours): 400 so that it is retried, the event
    recorded for the admin with why, and nothing changed."""
    user, client = customer
    subscribe(stripe_server, client)
    account = account_of(user)
    event = {"id": f"evt_bad_{time.time_ns()}", "object": "event", "created": int(time.time()), **malformed}
    event = json.loads(json.dumps(event).replace("CUSTOMER", account.stripe_customer_id))
    assert stripe_server.deliver(event) == 400
    recorded = StripeEvent.objects.get(event_id=event["id"])
    assert recorded.outcome.startswith("malformed: ") and recorded.type == event["type"]
    after = account_of(user)
    assert (after.balance, after.plan_id, after.subscription_status) == (
        account.balance,
        account.plan_id,
        account.subscription_status,
    )
    assert stripe_server.deliver(event) == 400  # a redelivery is refused again, not taken as done


def test_a_replayed_event_is_processed_once(stripe_server, customer):
    user, client = customer
    subscribe(stripe_server, client)
    account = account_of(user)
    sub = stripe_server.subscriptions[account.stripe_subscription_id]
    event = stripe_server.event("invoice.paid", stripe_server.invoice(sub))
    assert stripe_server.deliver(event) == 200
    assert stripe_server.deliver(event) == 200
    assert account_of(user).balance == account.balance + 5000
    # the same invoice in a new event (Stripe resends with a new id) is granted once too
    assert stripe_server.deliver(stripe_server.event("invoice.paid", event["data"]["object"])) == 200
    assert account_of(user).balance == account.balance + 5000
    assert CreditEntry.objects.filter(external_id=f"invoice:{event['data']['object']['id']}").count() == 1


def test_out_of_order_events_keep_the_newest_state(stripe_server, customer, plans):
    user, client = customer
    subscribe(stripe_server, client)
    account = account_of(user)
    sub = dict(stripe_server.subscriptions[account.stripe_subscription_id])
    now = int(time.time()) + 10
    newer = {**sub, "items": {"data": [{"id": "si_1", "price": {"id": "price_studio"}}]}}
    stripe_server.send("customer.subscription.updated", newer, created=now)
    stripe_server.send("customer.subscription.updated", sub, created=now - 5)  # late, older
    assert account_of(user).plan.slug == "studio"

    # a deletion that happened before the latest update does not end the subscription
    stripe_server.send("customer.subscription.deleted", {**sub, "status": "canceled"}, created=now - 1)
    assert account_of(user).plan.slug == "studio" and account_of(user).has_subscription


def test_invoice_paid_before_checkout_completed_still_grants(stripe_server, customer):
    user, client = customer
    account = account_of(user)
    client.post("/billing/plan/pro/")  # creates the customer and the session; the user pays later
    account = account_of(user)
    sub = stripe_server.subscription(account.stripe_customer_id, "price_pro")
    stripe_server.subscriptions[sub["id"]] = sub
    stripe_server.send("invoice.paid", stripe_server.invoice(sub))
    stripe_server.send("customer.subscription.created", sub)
    assert account_of(user).balance == account.balance + 5000 and account_of(user).plan.slug == "pro"


def test_payment_failed_shows_past_due(stripe_server, customer):
    user, client = customer
    subscribe(stripe_server, client)
    sub = stripe_server.subscriptions[account_of(user).stripe_subscription_id]
    stripe_server.send("invoice.payment_failed", {**stripe_server.invoice(sub), "status": "open"})
    assert account_of(user).subscription_status == "past_due"
    assert "past_due" in client.get("/billing/").content.decode()


def test_an_event_for_a_customer_we_do_not_know_changes_nothing(stripe_server, customer):
    user, client = customer
    subscribe(stripe_server, client)
    before = account_of(user)
    stranger = stripe_server.subscription("cus_nobody", "price_studio")
    for kind, obj in (
        ("customer.subscription.updated", stranger),
        ("invoice.paid", stripe_server.invoice(stranger)),
        ("customer.subscription.deleted", {**stranger, "status": "canceled"}),
    ):
        assert stripe_server.deliver(stripe_server.event(kind, obj)) == 200  # acknowledged, so not resent
    after = account_of(user)
    assert (after.plan_id, after.balance, after.stripe_subscription_id) == (
        before.plan_id,
        before.balance,
        before.stripe_subscription_id,
    )


def test_an_older_subscriptions_deletion_does_not_downgrade_the_newer_one(stripe_server, customer, plans):
    """The customer switched: a new subscription (studio) replaced the old one (pro), whose deletion comes
    last."""
    user, client = customer
    subscribe(stripe_server, client)
    old = dict(stripe_server.subscriptions[account_of(user).stripe_subscription_id])
    new = stripe_server.subscription(account_of(user).stripe_customer_id, "price_studio")
    stripe_server.subscriptions[new["id"]] = new
    stripe_server.send("customer.subscription.created", new)
    assert account_of(user).plan.slug == "studio"
    stripe_server.send("customer.subscription.deleted", {**old, "status": "canceled"})
    account = account_of(user)
    assert account.plan.slug == "studio" and account.stripe_subscription_id == new["id"]


@pytest.mark.parametrize("status", ["unpaid", "incomplete_expired"])
def test_a_subscription_that_ends_unpaid_returns_to_the_free_plan(stripe_server, customer, status):
    user, client = customer
    subscribe(stripe_server, client)
    sub = stripe_server.subscriptions[account_of(user).stripe_subscription_id]
    stripe_server.send("customer.subscription.updated", {**sub, "status": status})
    account = account_of(user)
    assert account.plan.slug == "free" and not account.has_subscription and account.subscription_status == status
    assert account.credits_renew_at is not None  # free months renew again


@pytest.mark.postgres_only  # a row lock held from another connection, and PostgreSQL's lock_timeout
def test_a_handler_that_fails_leaves_no_record_so_stripes_retry_is_applied(stripe_server, customer, live_server):
    """The account's row is locked elsewhere: the handler gives up (503), its transaction — the record that
    the event was seen included — rolls back, and Stripe's retry of the same event is applied once."""
    user, client = customer
    subscribe(stripe_server, client)
    account = account_of(user)
    event = stripe_server.event(
        "invoice.paid", stripe_server.invoice(stripe_server.subscriptions[account.stripe_subscription_id])
    )
    db = connection.settings_dict
    dsn = f"postgresql://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {db['NAME']} SET lock_timeout = '500ms'")  # for new connections
        try:
            with psycopg.connect(dsn) as holder:
                holder.execute(
                    f"SELECT 1 FROM billing_account WHERE {account._meta.pk.column} = %s FOR UPDATE", [account.pk]
                )
                assert stripe_server.deliver(event) == 503
        finally:
            admin.execute(f"ALTER DATABASE {db['NAME']} RESET lock_timeout")
    assert not StripeEvent.objects.filter(event_id=event["id"]).exists() and account_of(user).balance == account.balance
    assert stripe_server.deliver(event) == 200  # Stripe's retry
    assert stripe_server.deliver(event) == 200  # and a duplicate of it
    assert account_of(user).balance == account.balance + 5000
