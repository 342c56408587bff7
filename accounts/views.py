"""The dashboard: usage, API keys, history, job details, playground, webhook secret. Signed-in only,
and every query is scoped to the signed-in user."""

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts import selectors
from accounts.keys import KeyLimitReached, create_api_key_limited
from accounts.models import ApiKey, new_webhook_secret
from billing import credits
from billing.credits import InsufficientCredits, QueueFull
from generation import jobs, schedulers, services
from generation import selectors as generation_selectors
from generation.api import errors, responses
from generation.api.serializers import SERIALIZERS, UPSCALE_MODELS
from generation.api.views import base_url
from generation.models import Job

HISTORY_PAGE_SIZE = 20


def home(request):
    return render(request, "home.html")


@login_required
def dashboard(request):
    days = selectors.jobs_per_day(request.user)
    peak = max([day["count"] for day in days] + [1])
    account = credits.account_for(request.user)
    return render(request, "dashboard/index.html", {
        "usage": selectors.usage(request.user),
        "account": account,
        "credits_used": credits.used_since(account, selectors.period_start()),
        "days": [{**day, "height": round(100 * day["count"] / peak)} for day in days],
        "in_flight": selectors.jobs_in_flight(request.user),
        "period_start": selectors.period_start(),
    })


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
    return render(request, "dashboard/keys.html", {"keys": selectors.keys_with_usage(request.user),
                                                   "new_key": new_key}, status=status)


@login_required
@require_POST
def revoke_key(request, key_id):
    api_key = get_object_or_404(ApiKey, pk=key_id, user=request.user)
    api_key.revoked = True
    api_key.save(update_fields=["revoked"])
    messages.success(request, f"Key {api_key.prefix}… revoked.")
    return redirect("dashboard-keys")


@login_required
def history(request):
    page = Paginator(Job.objects.filter(user=request.user).order_by("-id"), HISTORY_PAGE_SIZE).get_page(
        request.GET.get("page"))
    return render(request, "dashboard/history.html", {"page": page})


@login_required
def job_detail(request, job_id):
    job = get_object_or_404(Job, pk=job_id, user=request.user)
    return render(request, "dashboard/job.html", {"job": job, "status": _job_status(job),
                                                  "playground_params": _playground_params(job)})


@login_required
@require_POST
def cancel_job(request, job_id):
    job = jobs.cancel(get_object_or_404(Job, pk=job_id, user=request.user))
    if job.status == Job.Status.CANCELED:
        messages.success(request, f"Job #{job.id} canceled; its credits were refunded.")
    return redirect("dashboard-job", job_id=job.id)


@login_required
def job_status(request, job_id):
    job = get_object_or_404(Job, pk=job_id, user=request.user)
    return JsonResponse(_job_status(job))


@login_required
def playground(request):
    return render(request, "dashboard/playground.html", {
        "schedulers": schedulers.DIFFUSERS_SCHEDULERS + list(schedulers.A1111_SCHEDULERS),
        "default_scheduler": schedulers.DEFAULT_SCHEDULER,
        "upscale_models": UPSCALE_MODELS,
    })


@login_required
@require_POST
def playground_run(request):
    """Run a playground form through the same serializers and service as the API."""
    try:
        data = json.loads(request.body)
    except ValueError:
        return JsonResponse(errors.invalid_request())
    serializer_class = SERIALIZERS.get(data.pop("kind", None)) if isinstance(data, dict) else None
    if serializer_class is None:
        return JsonResponse(errors.invalid_request())
    serializer = serializer_class(data={**data, "instant_response": "yes"})
    if not serializer.is_valid():
        return JsonResponse(errors.validation({field: [str(m) for m in msgs] for field, msgs in serializer.errors.items()}))
    kind = next(kind for kind, cls in SERIALIZERS.items() if cls is serializer_class)
    try:
        job = services.request_generation(user=request.user, kind=kind, params=serializer.validated_data,
                                          base_url=base_url(request))
    except QueueFull as exc:
        return JsonResponse(errors.queue_full(exc.limit))
    except InsufficientCredits as exc:
        return JsonResponse(errors.insufficient_credits(exc.needed, exc.balance, request.build_absolute_uri("/billing/")))
    return JsonResponse({"status": "queued", "id": job.id,
                         "status_url": reverse("dashboard-job-status", args=[job.id]),
                         "detail_url": reverse("dashboard-job", args=[job.id])})


@login_required
def webhook_secret(request):
    if request.method == "POST":
        request.user.webhook_secret = new_webhook_secret()
        request.user.save(update_fields=["webhook_secret"])
        messages.success(request, "Webhook secret rotated. Update your receivers.")
        return redirect("dashboard-webhook")
    return render(request, "dashboard/webhook.html")


def _job_status(job: Job) -> dict:
    """Progress for the dashboard's polling: status, position, progress 0..1, ETA, outputs."""
    job = jobs.reconcile(job)
    finished = job.is_finished
    return {
        "id": job.id,
        "status": job.status,
        "queue_position": generation_selectors.queue_position(job),
        "progress": generation_selectors.progress(job),
        "eta": None if finished else generation_selectors.eta_seconds(job),
        "outputs": responses.output_urls(job) if job.status == Job.Status.SUCCESS else [],
        "error": job.error,
        "generation_time": job.generation_time,
    }


def _playground_params(job: Job) -> dict:
    """The job's parameters in the playground form's terms (for "open in playground")."""
    params = job.params
    keys = ["prompt", "negative_prompt", "width", "height", "samples", "steps", "guidance_scale", "seed",
            "scheduler", "strength", "scale", "model_id"]
    return {"kind": job.kind, **{key: params[key] for key in keys if key in params}}
