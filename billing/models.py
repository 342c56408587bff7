"""Plans, each account's credits (a balance backed by an append-only ledger) and Stripe's side of it."""

from django.conf import settings
from django.db import models


class Plan(models.Model):
    """What an account may do and what it gets each month. Edited by admins."""

    class Priority(models.TextChoices):
        HIGH = "high"
        DEFAULT = "default"
        LOW = "low"

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    stripe_price_id = models.CharField(max_length=100, blank=True, help_text="recurring Stripe price (empty: free)")
    price_label = models.CharField(max_length=50, blank=True, help_text='shown on the pricing page, e.g. "$9/month"')
    monthly_credits = models.PositiveIntegerField()
    max_queued_jobs = models.PositiveIntegerField(default=10)
    requests_per_minute = models.PositiveIntegerField(default=60)
    max_resolution = models.PositiveIntegerField(default=1024, help_text="largest width/height in pixels")
    max_samples = models.PositiveSmallIntegerField(default=4)
    max_training_steps = models.PositiveIntegerField(default=1000, help_text="per training")
    max_training_images = models.PositiveSmallIntegerField(default=20, help_text="photos per training")
    max_concurrent_trainings = models.PositiveSmallIntegerField(default=1, help_text="queued or running at once")
    owned_models_quota_bytes = models.BigIntegerField(
        default=1024 * 1024 * 1024, help_text="storage for an account's trained models"
    )
    priority = models.CharField(max_length=16, choices=Priority.choices, default=Priority.DEFAULT)
    is_default = models.BooleanField(default=False, help_text="assigned at sign-up")
    is_public = models.BooleanField(default=True, help_text="listed on the pricing page")

    class Meta:
        ordering = ["monthly_credits"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True), name="one_default_plan"
            ),
            models.CheckConstraint(condition=models.Q(max_samples__gte=1), name="plan_max_samples_positive"),
        ]

    def __str__(self):
        return self.name


class Account(models.Model):
    """A user's billing state. `balance` is the sum of the ledger, kept in step in the same transaction.
    Its primary key is the user's, so a job's account is known without a lookup."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="billing", primary_key=True
    )
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="accounts")
    balance = models.IntegerField(default=0)
    unfinished_jobs = models.PositiveIntegerField(default=0, help_text="jobs queued or running (the plan caps it)")
    stripe_customer_id = models.CharField(max_length=100, blank=True, db_index=True)
    stripe_subscription_id = models.CharField(max_length=100, blank=True)
    subscription_status = models.CharField(max_length=32, blank=True)
    subscription_changed_at = models.IntegerField(default=0, help_text="Stripe `created` of the last applied event")
    current_period_end = models.DateTimeField(null=True, blank=True)
    credits_renew_at = models.DateTimeField(
        null=True, blank=True, help_text="when a plan without subscription gets its next monthly credits"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(balance__gte=0), name="account_balance_not_negative"),
            models.CheckConstraint(condition=models.Q(unfinished_jobs__gte=0), name="account_unfinished_not_negative"),
        ]

    def __str__(self):
        return f"{self.user} ({self.plan}, {self.balance} credits)"

    @property
    def has_subscription(self) -> bool:
        return bool(self.stripe_subscription_id) and self.subscription_status not in ("canceled", "incomplete_expired")


class CreditEntry(models.Model):
    """Append-only credits ledger. A job has one reserve and at most one settlement: a charge or a refund."""

    class EntryType(models.TextChoices):
        GRANT = "grant"
        RESERVE = "reserve"
        CHARGE = "charge"
        REFUND = "refund"
        EXPIRE = "expire"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="entries")
    entry_type = models.CharField(max_length=16, choices=EntryType.choices)
    amount = models.IntegerField(help_text="change of the balance: negative for reserve/expire")
    job = models.ForeignKey(
        "generation.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="credit_entries"
    )
    external_id = models.CharField(max_length=100, blank=True, help_text="e.g. the Stripe invoice a grant is for")
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "credit entries"
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "entry_type"], condition=models.Q(job__isnull=False), name="one_entry_per_job_and_type"
            ),
            models.UniqueConstraint(
                fields=["job"], condition=models.Q(entry_type__in=["charge", "refund"]), name="one_settlement_per_job"
            ),
            models.UniqueConstraint(
                fields=["external_id"], condition=~models.Q(external_id=""), name="one_entry_per_external_id"
            ),
        ]

    def __str__(self):
        return f"{self.entry_type} {self.amount:+d} ({self.account.user})"

    @property
    def summary(self) -> str:
        """The entry as a person would say it: "Job #34 · 2 images · 2 credits reserved"."""
        credits = _count(abs(self.amount), "credit")
        if self.job_id is None:
            what = {self.EntryType.GRANT: f"{credits} added", self.EntryType.EXPIRE: f"{credits} expired unused"}
            text = what.get(self.entry_type, f"{self.get_entry_type_display()} {credits}")
            return f"{text} · {self.reason}" if self.reason else text
        job = f"Job #{self.job_id}"
        if self.entry_type == self.EntryType.RESERVE:
            images = _count(self.job.params.get("samples", 1), "image") if self.job else ""
            return f"{job} · {images} · {credits} reserved" if images else f"{job} · {credits} reserved"
        if self.entry_type == self.EntryType.CHARGE:
            return f"{job} done · its reserved credits spent"
        if self.entry_type == self.EntryType.REFUND:
            return f"{job} {self.reason or 'failed'} · {credits} back"
        return f"{job} · {self.get_entry_type_display()} {credits}"


def _count(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"


class StripeEvent(models.Model):
    """Stripe events already processed: a redelivered event is acknowledged and skipped."""

    event_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=100)
    created = models.IntegerField()
    processed_at = models.DateTimeField(auto_now_add=True)
    outcome = models.CharField(max_length=200, blank=True, help_text='"malformed: why" for one that was refused')

    def __str__(self):
        return f"{self.type} {self.event_id}"
