from django import forms
from django.contrib import admin

from billing import credits
from billing.models import Account, CreditEntry, Plan, StripeEvent


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "slug",
        "price_label",
        "stripe_price_id",
        "monthly_credits",
        "max_queued_jobs",
        "requests_per_minute",
        "max_resolution",
        "max_samples",
        "priority",
        "is_default",
        "is_public",
    ]
    list_editable = ["monthly_credits", "max_queued_jobs", "requests_per_minute", "priority", "is_public"]
    prepopulated_fields = {"slug": ["name"]}


class AccountForm(forms.ModelForm):
    grant_credits = forms.IntegerField(required=False, min_value=1, help_text="add this many credits now")
    grant_reason = forms.CharField(required=False, max_length=150)

    class Meta:
        model = Account
        fields = ["plan"]


class CreditEntryInline(admin.TabularInline):
    model = CreditEntry
    fields = ["created_at", "entry_type", "amount", "job", "reason"]
    readonly_fields = fields
    ordering = ["-id"]
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    """Admins assign a plan and grant credits; the balance itself only moves through the ledger."""

    form = AccountForm
    list_display = ["user", "plan", "balance", "subscription_status", "current_period_end"]
    list_filter = ["plan", "subscription_status"]
    search_fields = ["user__email", "stripe_customer_id"]
    readonly_fields = [
        "user",
        "balance",
        "stripe_customer_id",
        "stripe_subscription_id",
        "subscription_status",
        "current_period_end",
        "credits_renew_at",
    ]
    fields = [
        "user",
        "plan",
        "balance",
        "grant_credits",
        "grant_reason",
        "stripe_customer_id",
        "stripe_subscription_id",
        "subscription_status",
        "current_period_end",
        "credits_renew_at",
    ]
    inlines = [CreditEntryInline]

    def has_add_permission(self, request):
        return False  # every user gets an account at sign-up

    def save_model(self, request, obj, form, change):
        # only the plan is written: a full save would overwrite a balance that moved meanwhile
        Account.objects.filter(pk=obj.pk).update(plan=obj.plan)
        amount = form.cleaned_data.get("grant_credits")
        if amount:
            reason = form.cleaned_data.get("grant_reason") or "granted by an administrator"
            credits.grant(obj, amount, reason=f"{reason} ({request.user})")
        obj.refresh_from_db()


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(CreditEntry)
class CreditEntryAdmin(ReadOnlyAdmin):
    """The ledger is append-only: entries are read here, never edited."""

    list_display = ["created_at", "account", "entry_type", "amount", "job", "reason", "external_id"]
    list_filter = ["entry_type"]
    search_fields = ["account__user__email", "external_id", "reason"]


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "type", "created", "processed_at", "outcome"]
    list_filter = ["type"]
    search_fields = ["event_id"]
