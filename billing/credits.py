"""Credits and the plan's queue cap: every rule about the balance, in one module.

Each function runs inside the caller's transaction (or its own) and moves the balance with a single
conditional UPDATE beside an append-only ledger entry, so concurrent requests can never take it below
zero (a CHECK constraint backs that), and the ledger's unique constraints make each job's reserve and
settlement, and each Stripe invoice's grant, happen at most once.

A job's life in the ledger: `reserve` (-cost) when it is admitted, then one settlement: `charge` (0:
the reservation becomes final) on success, or `refund` (+cost) on failure or cancel. The account's
count of unfinished jobs moves in the same UPDATEs, so admission checks credits and the queue cap in
one statement, with no lock held and no count of jobs.
"""

import calendar
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum
from django.db.models.functions import Greatest
from django.utils import timezone

from billing.models import Account, CreditEntry, Plan


class InsufficientCredits(Exception):
    def __init__(self, needed: int, balance: int):
        super().__init__(f"needs {needed} credits, has {balance}")
        self.needed, self.balance = needed, balance


class QueueFull(Exception):
    """The account already has its plan's maximum of unfinished jobs."""

    def __init__(self, limit: int):
        super().__init__(f"at most {limit} queued jobs")
        self.limit = limit


def default_plan() -> Plan:
    """The plan given at sign-up (created on first use as "Free" from settings)."""
    plan = Plan.objects.filter(is_default=True).first()
    if plan is None:
        plan, _ = Plan.objects.get_or_create(
            slug="free",
            defaults={
                "name": "Free",
                "monthly_credits": settings.FREE_PLAN_CREDITS,
                "is_default": True,
                "price_label": "$0",
                "priority": Plan.Priority.LOW,
                "max_queued_jobs": settings.MAX_QUEUED_JOBS,
                "requests_per_minute": settings.API_REQUESTS_PER_MINUTE,
            },
        )
    return plan


def _months_later(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months later (clamped to the month's last day)."""
    year, month = divmod(moment.year * 12 + moment.month - 1 + months, 12)
    month += 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def next_month(moment: datetime) -> datetime:
    return _months_later(moment, 1)


def previous_month(moment: datetime) -> datetime:
    return _months_later(moment, -1)


def period_start(account: Account, now: datetime | None = None) -> datetime:
    """When the account's current credits period began: a month before it renews (the subscription's
    period end, or when the free plan's credits renew), so usage pages and billing agree; the
    calendar month when neither is known."""
    now = now or timezone.now()
    renews = account.current_period_end if account.has_subscription else account.credits_renew_at
    if renews is None:
        return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = previous_month(renews)
    while start > now:  # a renewal date further ahead than one period
        start = previous_month(start)
    return start


def account_for(user, loaded: bool = False) -> Account:
    """The user's account, created on first use with the default plan and its first month's credits.
    With `loaded`, the one loaded with the user in this request (API key authentication loads the key's
    user, account and plan in one query) is used when there is one, without a query."""
    relation = Account.user.field.remote_field  # the user's side of the one-to-one
    if loaded and relation.is_cached(user) and relation.get_cached_value(user) is not None:
        return relation.get_cached_value(user)
    account = Account.objects.filter(user=user).select_related("plan").first()
    if account is not None:
        return account
    with transaction.atomic():
        plan = default_plan()
        account, created = Account.objects.get_or_create(
            user=user, defaults={"plan": plan, "credits_renew_at": next_month(timezone.now())}
        )
        if created and plan.monthly_credits:
            grant(account, plan.monthly_credits, reason=f"{plan.name} plan: first month")
    return Account.objects.select_related("plan").get(pk=account.pk)


def _add(account: Account, entry_type: str, amount: int, **fields) -> CreditEntry:
    entry = CreditEntry.objects.create(account=account, entry_type=entry_type, amount=amount, **fields)
    if amount:
        Account.objects.filter(pk=account.pk).update(balance=F("balance") + amount)
    return entry


@transaction.atomic
def grant(account: Account, amount: int, reason: str = "", external_id: str = "") -> CreditEntry | None:
    """Add credits; a grant for an `external_id` already granted (a Stripe invoice) is skipped (None)."""
    try:
        with transaction.atomic():
            return _add(account, CreditEntry.EntryType.GRANT, amount, reason=reason[:200], external_id=external_id)
    except IntegrityError:
        if external_id and CreditEntry.objects.filter(external_id=external_id).exists():
            return None
        raise


def check_admissible(account: Account, cost: int):
    """Raise QueueFull or InsufficientCredits when the account, as last read, could not be admitted for
    `cost`: a cheap check before the request does any work. `admit` decides."""
    if account.unfinished_jobs >= account.plan.max_queued_jobs:
        raise QueueFull(account.plan.max_queued_jobs)
    if account.balance < cost:
        raise InsufficientCredits(cost, account.balance)


def admit(account: Account, cost: int):
    """Take `cost` credits and one of the plan's unfinished-job slots, atomically; raise
    InsufficientCredits or QueueFull (and change nothing) when either is missing.

    Every generation request runs this UPDATE, so it is written as SQL: the ORM spends ~1 ms of Python
    compiling the same statement each time (bench/RESULTS.md)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Account._meta.db_table} SET balance = balance - %s, unfinished_jobs = unfinished_jobs + 1 "
            "WHERE user_id = %s AND balance >= %s AND unfinished_jobs < %s",
            [cost, account.pk, cost, account.plan.max_queued_jobs],
        )
        admitted = cursor.rowcount
    if not admitted:
        current = Account.objects.get(pk=account.pk)
        current.plan = account.plan  # the limits this admission used
        check_admissible(current, cost)
        raise InsufficientCredits(cost, current.balance)  # changed since the UPDATE: refuse all the same


def record_reservation(job, cost: int):
    """The ledger entry for what `admit` took for `job` (same transaction)."""
    CreditEntry.objects.create(account_id=job.user_id, entry_type=CreditEntry.EntryType.RESERVE, amount=-cost, job=job)


def _one_slot_freed():
    """The unfinished-jobs count less one, never below zero (the balance moves whatever the count says)."""
    return Greatest(F("unfinished_jobs") - 1, 0)


def charge(job):
    """The job succeeded: its reservation becomes final and its slot is free. Called once per job, by
    the state change that finished it (a second settlement would break a unique constraint)."""
    reservation = CreditEntry.objects.filter(job=job, entry_type=CreditEntry.EntryType.RESERVE).first()
    reserved = -reservation.amount if reservation else 0
    CreditEntry.objects.create(
        account_id=job.user_id, entry_type=CreditEntry.EntryType.CHARGE, amount=0, job=job, reason=f"{reserved} credits"
    )
    Account.objects.filter(pk=job.user_id).update(unfinished_jobs=_one_slot_freed())


def refund(job, reason: str = ""):
    """The job failed or was canceled: its reservation comes back and its slot is free (once per job)."""
    reservation = CreditEntry.objects.filter(job=job, entry_type=CreditEntry.EntryType.RESERVE).first()
    if reservation is None:
        return  # never admitted (made by hand): nothing to give back
    CreditEntry.objects.create(
        account_id=job.user_id,
        entry_type=CreditEntry.EntryType.REFUND,
        amount=-reservation.amount,
        job=job,
        reason=reason[:200],
    )
    Account.objects.filter(pk=job.user_id).update(
        balance=F("balance") - reservation.amount, unfinished_jobs=_one_slot_freed()
    )


def ledger_total(account: Account) -> int:
    """The sum of the account's ledger: always equal to its balance."""
    return CreditEntry.objects.filter(account=account).aggregate(total=Sum("amount"))["total"] or 0


def used_since(account: Account, since: datetime) -> int:
    """Credits spent on successful jobs queued since `since`."""
    spent = CreditEntry.objects.filter(
        account=account,
        entry_type=CreditEntry.EntryType.RESERVE,
        created_at__gte=since,
        job__credit_entries__entry_type=CreditEntry.EntryType.CHARGE,
    )
    return -(spent.aggregate(total=Sum("amount"))["total"] or 0)


@transaction.atomic
def renew(account: Account, now: datetime | None = None) -> bool:
    """Start a new month for an account without a subscription whose renewal date has come:
    unused credits expire and the plan's monthly credits arrive. False when it was not due."""
    now = now or timezone.now()
    account = Account.objects.select_for_update().select_related("plan").get(pk=account.pk)
    if account.has_subscription or account.credits_renew_at is None or account.credits_renew_at > now:
        return False
    reason = f"{account.plan.name} plan: month from {now:%Y-%m-%d}"
    if account.balance:
        _add(account, CreditEntry.EntryType.EXPIRE, -account.balance, reason=reason)
    if account.plan.monthly_credits:
        _add(account, CreditEntry.EntryType.GRANT, account.plan.monthly_credits, reason=reason)
    renew_at = account.credits_renew_at
    while renew_at <= now:
        renew_at = next_month(renew_at)
    Account.objects.filter(pk=account.pk).update(credits_renew_at=renew_at)
    return True


def renew_due(now: datetime | None = None) -> int:
    """Renew every account whose month is over; the number renewed."""
    now = now or timezone.now()
    return sum(renew(account, now) for account in Account.objects.filter(credits_renew_at__lte=now))
