"""Pricing and billing pages, plan changes through Stripe, and Stripe's webhook endpoint."""

import logging

import stripe
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing import credits, payments, stripe_events
from billing.models import Plan

logger = logging.getLogger(__name__)
LEDGER_PAGE_SIZE = 25


def pricing(request):
    credits.default_plan()  # the free plan is always listed
    account = credits.account_for(request.user) if request.user.is_authenticated else None
    return render(
        request,
        "billing/pricing.html",
        {
            "plans": Plan.objects.filter(is_public=True),
            "account": account,
            "configured": payments.configured(),
        },
    )


@login_required
def billing(request):
    account = credits.account_for(request.user)
    ledger = Paginator(account.entries.select_related("job"), LEDGER_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "billing/billing.html",
        {
            "account": account,
            "ledger": ledger,
            "configured": payments.configured(),
        },
    )


@login_required
@require_POST
def change_plan(request, slug):
    """Upgrade or downgrade: Checkout for a first subscription, else change the one there is."""
    plan = get_object_or_404(Plan, slug=slug, is_public=True)
    account = credits.account_for(request.user)
    if not payments.configured():
        messages.error(request, "Billing is not configured on this server.")
        return redirect("pricing")
    if plan == account.plan:
        messages.info(request, f"You are already on the {plan.name} plan.")
        return redirect("billing")
    try:
        if not account.has_subscription:
            if not plan.stripe_price_id:
                messages.info(request, f"The {plan.name} plan needs no payment.")
                return redirect("billing")
            return redirect(
                payments.checkout_url(
                    account,
                    plan,
                    success_url=request.build_absolute_uri(reverse("billing")) + "?checkout=success",
                    cancel_url=request.build_absolute_uri(reverse("pricing")),
                ),
                permanent=False,
            )
        payments.change_subscription(account, plan)
    except stripe.StripeError:
        logger.exception("Stripe refused a plan change for %s", request.user)
        messages.error(request, "The payment provider could not be reached. Nothing was changed; try again.")
        return redirect("pricing")
    if plan.stripe_price_id:
        messages.success(request, f"Your plan changes to {plan.name} as soon as Stripe confirms it.")
    else:
        messages.success(request, f"Your subscription ends with the current period; then you are on {plan.name}.")
    return redirect("billing")


@login_required
@require_POST
def portal(request):
    """Stripe's customer portal: invoices, payment methods, cancelation."""
    if not payments.configured():
        messages.error(request, "Billing is not configured on this server.")
        return redirect("billing")
    try:
        url = payments.portal_url(credits.account_for(request.user), request.build_absolute_uri(reverse("billing")))
    except stripe.StripeError:
        logger.exception("Stripe portal failed for %s", request.user)
        messages.error(request, "The payment provider could not be reached; try again.")
        return redirect("billing")
    return redirect(url)


@csrf_exempt
@require_POST
def stripe_webhook(request):
    """Stripe's events: 400 unless signed with our secret; 200 once applied (or already applied)."""
    try:
        event = stripe_events.verify(request.body, request.headers.get("Stripe-Signature"))
    except stripe_events.InvalidEvent as exc:
        logger.warning("Refused a Stripe webhook: %s", exc)
        return HttpResponse("invalid signature", status=400, content_type="text/plain")
    try:
        outcome = stripe_events.process(event)
    except DatabaseError as exc:  # nothing was recorded: Stripe retries, and the retry is applied
        logger.warning("Stripe event %s (%s) not applied, for now: %s", event["id"], event.get("type"), exc)
        return HttpResponse("try again", status=503, content_type="text/plain")
    except stripe_events.MalformedEvent as exc:
        stripe_events.record_malformed(event, str(exc))
        logger.warning("Refused a malformed Stripe event %s (%s): %s", event["id"], event.get("type"), exc)
        return HttpResponse("malformed event", status=400, content_type="text/plain")
    logger.info("Stripe event %s (%s): %s", event["id"], event.get("type"), outcome)
    return JsonResponse({"received": True, "outcome": outcome})
