"""Stripe webhook events: verified, applied once, and safe to receive out of order.

- A redelivered event is recognised by its id (StripeEvent, unique) and skipped.
- Subscription state carries the `created` time of the event that set it; an older event never
  overwrites a newer one.
- Credits arrive with `invoice.paid`, granted once per invoice (the ledger's unique external id).
- Every event finds its account through the Stripe customer, which is created before Checkout.
"""

import json
import logging
import time
from datetime import UTC, datetime

import stripe
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing import credits
from billing.models import Account, Plan, StripeEvent

logger = logging.getLogger(__name__)

ENDED = {"canceled", "incomplete_expired", "unpaid"}


TOLERANCE = 300  # seconds a signature's timestamp may be off, either way


class InvalidEvent(Exception):
    """Bad signature, a timestamp too old or in the future, or not an event: answered 400, nothing changed."""


class MalformedEvent(Exception):
    """A correctly signed event whose content cannot be applied: answered 400, recorded, nothing changed."""


def verify(payload: bytes, signature: str | None) -> dict:
    """The event in `payload` if `signature` (the Stripe-Signature header) is valid for our secret and
    was made within TOLERANCE seconds of now (Stripe's library checks only the past)."""
    if not settings.STRIPE_WEBHOOK_SECRET:
        raise InvalidEvent("webhooks are not configured")
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8"), signature or "", settings.STRIPE_WEBHOOK_SECRET, tolerance=TOLERANCE
        )
        event = json.loads(payload)
    except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidEvent(str(exc)) from exc
    signed_at = max(
        int(part[2:]) for part in (signature or "").split(",") if part.startswith("t=") and part[2:].isdigit()
    )
    if signed_at > time.time() + TOLERANCE:
        raise InvalidEvent("the signature's timestamp is in the future")
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not 0 < len(event["id"]) <= 100:
        raise InvalidEvent("not an event")
    return event


def process(event: dict) -> str:
    """Apply a verified event once; returns what happened (for the log and the response). MalformedEvent,
    with nothing changed, when its content is not what its type carries."""
    try:
        return _apply(event)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MalformedEvent(f"{type(exc).__name__}: {exc}"[:200]) from exc


def record_malformed(event: dict, reason: str):
    """Keep a malformed event's id, type and why, for the admin (a redelivery is refused again)."""
    created = event.get("created")
    StripeEvent.objects.get_or_create(
        event_id=event["id"],
        defaults={
            "type": str(event.get("type", ""))[:100],
            "created": created if type(created) is int and abs(created) < 2**31 else 0,
            "outcome": f"malformed: {reason}"[:200],
        },
    )


@transaction.atomic
def _apply(event: dict) -> str:
    data, created_at = event["data"], int(event.get("created", 0))
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise TypeError("data.object is not an object")
    record, created = StripeEvent.objects.get_or_create(
        event_id=event["id"], defaults={"type": str(event.get("type", ""))[:100], "created": created_at}
    )
    if not created:
        if record.outcome.startswith("malformed"):
            raise ValueError(record.outcome)
        return "duplicate"
    handler = HANDLERS.get(event.get("type"))
    if handler is None:
        return "ignored"
    obj = data["object"]
    account = _account(obj)
    if account is None:
        logger.warning("Stripe event %s (%s) names no known account", event["id"], event["type"])
        return "no account"
    return handler(account, obj, created_at)


def _id(value) -> str:
    return value.get("id", "") if isinstance(value, dict) else (value or "")


def _account(obj: dict) -> Account | None:
    customer = _id(obj.get("customer"))
    account = Account.objects.select_for_update().filter(stripe_customer_id=customer).first() if customer else None
    if account is None:
        user_id = str((obj.get("metadata") or {}).get("user_id") or obj.get("client_reference_id") or "")
        if user_id.isdigit():
            account = Account.objects.select_for_update().filter(user_id=int(user_id)).first()
    return account


def _timestamp(value) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def _apply_subscription(
    account: Account, created: int, *, subscription_id: str, status: str, plan: Plan | None, period_end=None
) -> str:
    """Set the account's subscription state, unless a newer event already did."""
    if created < account.subscription_changed_at:
        return "stale"
    if status in ENDED:
        if account.stripe_subscription_id and subscription_id != account.stripe_subscription_id:
            return "other subscription"
        account.plan = credits.default_plan()
        account.stripe_subscription_id = ""
        account.current_period_end = None
        account.credits_renew_at = credits.next_month(timezone.now())
    else:
        account.plan = plan or account.plan
        account.stripe_subscription_id = subscription_id
        account.current_period_end = period_end or account.current_period_end
    account.subscription_status = status
    account.subscription_changed_at = created
    account.save()
    return f"subscription {status}"


def _plan_for_price(price_id: str) -> Plan | None:
    return Plan.objects.filter(stripe_price_id=price_id).first() if price_id else None


def checkout_completed(account: Account, session: dict, created: int) -> str:
    if session.get("mode") != "subscription" or not session.get("subscription"):
        return "ignored"
    plan = Plan.objects.filter(slug=(session.get("metadata") or {}).get("plan", "")).first()
    if account.stripe_customer_id != _id(session.get("customer")):
        account.stripe_customer_id = _id(session.get("customer"))
    return _apply_subscription(
        account, created, subscription_id=_id(session["subscription"]), status="active", plan=plan
    )


def subscription_changed(account: Account, subscription: dict, created: int) -> str:
    items = (subscription.get("items") or {}).get("data") or [{}]
    price = _id(items[0].get("price"))
    period_end = subscription.get("current_period_end") or items[0].get("current_period_end")
    return _apply_subscription(
        account,
        created,
        subscription_id=subscription["id"],
        status=subscription.get("status", ""),
        plan=_plan_for_price(price),
        period_end=_timestamp(period_end),
    )


def subscription_deleted(account: Account, subscription: dict, created: int) -> str:
    return _apply_subscription(account, created, subscription_id=subscription["id"], status="canceled", plan=None)


def _invoice_price(invoice: dict) -> str:
    for line in (invoice.get("lines") or {}).get("data") or []:
        price = _id(line.get("price")) or ((line.get("pricing") or {}).get("price_details") or {}).get("price")
        if price:
            return price
    return ""


def invoice_paid(account: Account, invoice: dict, created: int) -> str:
    """The period is paid for: grant its credits (once per invoice)."""
    plan = _plan_for_price(_invoice_price(invoice)) or account.plan
    entry = credits.grant(
        account,
        plan.monthly_credits,
        reason=f"{plan.name} plan: invoice {invoice.get('number') or ''}",
        external_id=f"invoice:{invoice['id']}",
    )
    return "granted" if entry else "already granted"


def invoice_payment_failed(account: Account, invoice: dict, created: int) -> str:
    """Stripe retries the payment and tells us through subscription events; show the state meanwhile."""
    if created >= account.subscription_changed_at and account.has_subscription:
        Account.objects.filter(pk=account.pk).update(subscription_status="past_due")
    return "payment failed"


HANDLERS = {
    "checkout.session.completed": checkout_completed,
    "customer.subscription.created": subscription_changed,
    "customer.subscription.updated": subscription_changed,
    "customer.subscription.deleted": subscription_deleted,
    "invoice.paid": invoice_paid,
    "invoice.payment_failed": invoice_payment_failed,
}
