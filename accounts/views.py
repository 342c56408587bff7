"""Account pages of the dashboard: API keys and the webhook secret. Signed-in only, and every query
is scoped to the signed-in user. (The pages about jobs are generation/dashboard/views.py.)"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.keys import KeyLimitReached, create_api_key_limited
from accounts.models import ApiKey, new_webhook_secret
from accounts.usage import keys_with_usage
from billing import credits


def home(request):
    return render(request, "home.html")


@login_required
def keys(request):
    new_key, status = None, 200
    if request.method == "POST":
        name = request.POST.get("name", "").strip()[:100]
        try:
            _, new_key = create_api_key_limited(request.user, name=name or "unnamed")
        except KeyLimitReached as exc:
            messages.error(request, str(exc))
            status = 429
    since = credits.period_start(credits.account_for(request.user))
    context = {"keys": keys_with_usage(request.user, since), "new_key": new_key}
    return render(request, "dashboard/keys.html", context, status=status)


@login_required
@require_POST
def revoke_key(request, key_id):
    api_key = get_object_or_404(ApiKey, pk=key_id, user=request.user)
    api_key.revoked = True
    api_key.save(update_fields=["revoked"])
    messages.success(request, f"Key {api_key.prefix}… revoked.")
    return redirect("dashboard-keys")


@login_required
def webhook_secret(request):
    if request.method == "POST":
        request.user.webhook_secret = new_webhook_secret()
        request.user.save(update_fields=["webhook_secret"])
        messages.success(request, "Webhook secret rotated. Update your receivers.")
        return redirect("dashboard-webhook")
    return render(request, "dashboard/webhook.html")
