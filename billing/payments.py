"""Calls to Stripe (the official library): Checkout for a subscription, the customer portal, plan changes.

What Stripe then does arrives as signed webhook events (billing/stripe_events.py); nothing here changes
an account's plan or credits by itself.
"""

import stripe
from django.conf import settings
from django.db import transaction

from billing.models import Account, Plan


class BillingNotConfigured(Exception):
    pass


def configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def client() -> stripe.StripeClient:
    if not configured():
        raise BillingNotConfigured()
    base = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else None
    return stripe.StripeClient(settings.STRIPE_SECRET_KEY, base_addresses=base, max_network_retries=2)


def ensure_customer(account: Account) -> str:
    """The account's Stripe customer id, created once (before Checkout, so every event can find the account)."""
    if account.stripe_customer_id:
        return account.stripe_customer_id
    with transaction.atomic():
        account = Account.objects.select_for_update().select_related("user").get(pk=account.pk)
        if not account.stripe_customer_id:
            customer = client().v1.customers.create(
                params={"email": account.user.email, "metadata": {"user_id": str(account.user_id)}},
                options={"idempotency_key": f"customer-for-user-{account.user_id}"},
            )
            account.stripe_customer_id = customer.id
            account.save(update_fields=["stripe_customer_id"])
    return account.stripe_customer_id


def checkout_url(account: Account, plan: Plan, success_url: str, cancel_url: str) -> str:
    """A Checkout page where the user subscribes to `plan`."""
    session = client().v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": ensure_customer(account),
            "client_reference_id": str(account.user_id),
            "line_items": [{"price": plan.stripe_price_id, "quantity": 1}],
            "success_url": success_url,
            "cancel_url": cancel_url,
            "metadata": {"user_id": str(account.user_id), "plan": plan.slug},
            "subscription_data": {"metadata": {"user_id": str(account.user_id)}},
        }
    )
    return session.url


def portal_url(account: Account, return_url: str) -> str:
    """Stripe's customer portal: payment methods, invoices, cancelation."""
    session = client().v1.billing_portal.sessions.create(
        params={"customer": ensure_customer(account), "return_url": return_url}
    )
    return session.url


def change_subscription(account: Account, plan: Plan):
    """Move an existing subscription to `plan` (prorated), or end it at the period's end for a free plan."""
    stripe_client = client()
    if not plan.stripe_price_id:
        stripe_client.v1.subscriptions.update(account.stripe_subscription_id, params={"cancel_at_period_end": True})
        return
    subscription = stripe_client.v1.subscriptions.retrieve(account.stripe_subscription_id)
    item = subscription["items"]["data"][0]
    stripe_client.v1.subscriptions.update(
        account.stripe_subscription_id,
        params={
            "items": [{"id": item["id"], "price": plan.stripe_price_id}],
            "cancel_at_period_end": False,
            "proration_behavior": "create_prorations",
        },
    )
