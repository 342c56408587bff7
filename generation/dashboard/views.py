"""Pages and endpoints of the generation app outside the API: the dashboard's pages about jobs (usage,
history, a job, the playground), stored files (without a front proxy), /healthz for load balancers and
orchestrators, /metrics for Prometheus. Dashboard pages are signed-in only, and every query is scoped to
the signed-in user; they go through the same services as the API."""

import hmac
import json
import mimetypes
import re
from functools import lru_cache
from pathlib import PurePosixPath

import markdown
from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import SuspiciousFileOperation
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views import static
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from billing import credits
from billing.credits import InsufficientCredits, QueueFull
from generation import kinds, services
from generation.answers import hosted, selectors
from generation.answers import training as training_answers
from generation.api import errors
from generation.inputs import library, storage
from generation.kinds import schedulers
from generation.kinds.base import IMAGE_EDITING, UPSCALE_MODELS, V6_IMAGES, InvalidInput
from generation.kinds.controlnet import CONTROL_TYPES
from generation.kinds.training import TRAINING_TYPES, LoraFineTuneSerializer
from generation.models import Job, LibraryModel
from generation.queueing import monitoring
from generation.web import refusals, waiting

HISTORY_PAGE_SIZE = 20


@login_required
def dashboard(request):
    days = selectors.jobs_per_day(request.user)
    peak = max([day["count"] for day in days] + [1])
    account = credits.account_for(request.user)
    period_start = credits.period_start(account)
    return render(
        request,
        "dashboard/index.html",
        {
            "usage": selectors.usage(request.user, period_start),
            "account": account,
            "credits_used": credits.used_since(account, period_start),
            "days": [{**day, "height": round(100 * day["count"] / peak)} for day in days],
            "peak": peak,
            "in_flight": selectors.jobs_in_flight(request.user),
            "period_start": period_start,
            "has_keys": request.user.api_keys.filter(revoked=False).exists(),
            "unconfirmed_email": _unconfirmed_email(request.user),
            "email_to_console": settings.EMAIL_BACKEND.endswith("console.EmailBackend"),
        },
    )


def _unconfirmed_email(user) -> str:
    """The user's address while its confirmation link has not been followed, else ""."""
    address = EmailAddress.objects.filter(user=user, primary=True).first()
    return address.email if address and not address.verified else ""


@login_required
def history(request):
    page = Paginator(Job.objects.filter(user=request.user).order_by("-id"), HISTORY_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(request, "dashboard/history.html", {"page": page})


@login_required
def job_detail(request, job_id):
    job = get_object_or_404(Job, pk=job_id, user=request.user)
    return render(
        request,
        "dashboard/job.html",
        {
            "job": job,
            "status": _job_status(request.user, job.id),
            "fields": _job_fields(job),
            "playground_params": _playground_params(job),
        },
    )


@login_required
@require_POST
def cancel_job(request, job_id):
    try:
        job = services.cancel_job(user=request.user, job_id=job_id)
    except services.JobNotFound as exc:
        raise Http404() from exc
    if job.status == Job.Status.CANCELED:
        messages.success(request, f"Job #{job.id} canceled; its credits were refunded.")
    return redirect("dashboard-job", job_id=job.id)


@login_required
def job_status(request, job_id):
    return JsonResponse(_job_status(request.user, job_id))


@login_required
def job_events(request, job_id):
    """The job's status as Server-Sent Events for its page and the playground (carried out on the event
    loop, generation/web/waiting.py); 501 where the server cannot (the pages then poll status.json)."""
    job = get_object_or_404(Job, pk=job_id, user=request.user)
    if not waiting.can_continue(request):
        return HttpResponse("event streams need the ASGI web server", status=501, content_type="text/plain")
    return HttpResponse(headers=waiting.continuation(stream=job.id, format="dashboard"))


@login_required
def playground(request):
    models = {model_type: [] for model_type in LibraryModel.ModelType.values}
    for model in library.listed(credits.account_for(request.user).plan, request.user):
        models[model.model_type].append(model)
    return render(
        request,
        "dashboard/playground.html",
        {
            "models": models,
            "schedulers": schedulers.class_labels(),
            "timestep_spacings": schedulers.TIMESTEP_SPACINGS,
            "default_scheduler": schedulers.DEFAULT_SCHEDULER,
            "upscale_models": UPSCALE_MODELS,
            "control_types": CONTROL_TYPES,
            "operations": kinds.playground(),
            "sections": kinds.form_sections(),
            "forms": {operation.name: _form(operation) for operation in kinds.playground()},
        },
    )


def _form(operation) -> dict:
    """What the playground's script needs of an operation's form: where its image goes, whether it takes a
    mask or control images, and the API path its curl line shows (the SDK's v6 one)."""
    families = [V6_IMAGES, IMAGE_EDITING[0]]
    family = next((name for name in families if name in operation.routes), next(iter(operation.routes)))
    return {
        "path": f"/{family}/{operation.routes[family]}".rstrip("/"),
        "image_field": operation.image_field,
        "mask": "mask" in operation.form,
        "control": "control" in operation.form,
        "image": "image" in operation.form,
    }


@login_required
@require_POST
def playground_run(request):
    """Run a playground form through the same serializers and service as the API; errors are the API's."""
    try:
        data = json.loads(request.body)
    except ValueError:
        return JsonResponse(errors.invalid_request())
    serializer_class = kinds.serializer(data.pop("operation", None)) if isinstance(data, dict) else None
    if serializer_class is None:
        return JsonResponse(errors.invalid_request())
    job, refusal = _queue(request, serializer_class(data=data, context={"model_library": True}), wait_seconds=0)
    if refusal:
        return refusal
    return JsonResponse(
        {
            "status": "queued",
            "id": job.id,
            "status_url": reverse("dashboard-job-status", args=[job.id]),
            "events_url": reverse("dashboard-job-events", args=[job.id]),
            "detail_url": reverse("dashboard-job", args=[job.id]),
        }
    )


@login_required
def train(request):
    """The Train page: photos, an instance prompt and steps start a training (the hosted training API's
    lora_fine_tune); its progress, loss and samples as they come; the account's trainings."""
    plan = credits.account_for(request.user).plan
    trainings = [(job, training_answers.stage(job)) for job in services.trainings(request.user)[:20]]
    return render(
        request,
        "dashboard/train.html",
        {
            "trainings": trainings,
            "default_steps": settings.TRAINING_DEFAULT_STEPS,
            "plan": plan,
            "training_types": [value for value in TRAINING_TYPES if value != "none"],
        },
    )


@login_required
@require_POST
def train_run(request):
    """Start a training from the Train page through the API's serializer and service; errors are the API's."""
    try:
        data = json.loads(request.body)
    except ValueError:
        return JsonResponse(errors.invalid_request())
    job, refusal = _queue(request, LoraFineTuneSerializer(data=data if isinstance(data, dict) else {}))
    if refusal:
        return refusal
    return JsonResponse({**training_answers.submitted(job), **_training_urls(job)})


def _queue(request, serializer, **options) -> tuple[Job | None, JsonResponse | None]:
    """A form validated by the API's serializer and queued by its service: (the job, None), or (None, the
    API's refusal)."""
    if not serializer.is_valid():
        refusal = errors.validation({field: [str(m) for m in msgs] for field, msgs in serializer.errors.items()})
        return None, JsonResponse(refusal)
    submission = serializer.validated_data
    try:
        job = services.request_generation(
            user=request.user,
            params=submission["params"],
            inputs=submission["inputs"],
            base_url=storage.base_url_for(request),
            **options,
        )
    except (QueueFull, InsufficientCredits, InvalidInput) as exc:
        return None, JsonResponse(errors.answer(refusals.classify(exc), request))
    return job, None


def _training_urls(job: Job) -> dict:
    training_id = job.params["training_id"]
    return {
        "status_url": reverse("dashboard-training-status", args=[training_id]),
        "events_url": reverse("dashboard-job-events", args=[job.id]),
        "cancel_url": reverse("dashboard-training-cancel", args=[training_id]),
        "download_url": reverse("dashboard-training-download", args=[training_id]),
    }


def _own_training(service, request, training_id) -> Job:
    """`service` (own_training, cancel_training) on the user's training; anyone else's is not found."""
    try:
        return service(request.user, training_id)
    except services.JobNotFound as exc:
        raise Http404() from exc


@login_required
def training_status(request, training_id):
    job = _own_training(services.own_training, request, training_id)
    return JsonResponse({**training_answers.status(job), **_training_urls(job)})


@login_required
@require_POST
def training_cancel(request, training_id):
    return JsonResponse(training_answers.canceled(_own_training(services.cancel_training, request, training_id)))


@login_required
def training_download(request, training_id):
    """The trained LoRA (kohya layout, safetensors), for its owner only."""
    job = _own_training(services.own_training, request, training_id)
    entry = LibraryModel.objects.filter(owner=request.user, public_id=job.params["training_id"]).first()
    name = library.stored_file(entry) if entry else None
    data = storage.read_bytes(name) if name else None
    if data is None:
        raise Http404()
    return HttpResponse(
        data,
        content_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{entry.public_id}.safetensors"'},
    )


def _job_status(user, job_id) -> dict:
    """The job's status for the dashboard's polling (hosted.dashboard_status)."""
    try:
        job = services.fetch_job(user=user, job_id=job_id)
    except services.JobNotFound as exc:
        raise Http404() from exc
    return hosted.dashboard_status(job)


def _job_fields(job: Job) -> list[tuple[str, str]]:
    """What the job asked for, as labelled values a person reads: only what was set, defaults that
    matter (size, steps, guidance) included, flags said in words; what an operation's preset sets itself
    (an object removal's fill words) left out."""
    preset = kinds.OPERATIONS[job.operation].preset if job.operation in kinds.OPERATIONS else ()
    params = {name: value for name, value in job.params.items() if name not in preset}
    size = f"{params['width']} × {params['height']}" if params.get("width") else ""
    if size and params.get("upscale", 1) > 1:
        size += f", upscaled {params['upscale']}×"
    loras = ", ".join(f"{lora['id']} ({lora['strength']:g})" for lora in params.get("loras") or [])
    controlnets = ", ".join(
        f"{model['id']} ({model['type'] or 'as given'}, {model['scale']:g})"
        for model in params.get("controlnets") or []
    )
    fields = [
        ("Prompt", params.get("prompt")),
        ("Negative prompt", params.get("negative_prompt")),
        ("Size", size),
        ("Images", params.get("samples") if params.get("samples", 1) > 1 else None),
        ("Steps", params.get("steps")),
        ("Guidance", params.get("guidance_scale")),
        ("Scheduler", params.get("scheduler")),
        (
            "Scheduler options",
            ", ".join(f"{name} {value}" for name, value in (params.get("scheduler_options") or {}).items()),
        ),
        ("Eta", params.get("eta")),
        ("Sampling of", params.get("sampling_from")),  # a few-step model's own: why 4 steps at guidance 0
        ("Hires fix", _hires_text(params.get("hires"))),
        ("Strength", params.get("strength")),
        ("Scale", f"{params['scale']}×" if params.get("scale") else None),
        ("Upscaler", params.get("upscaler")),
        ("Model", params.get("checkpoint")),
        ("LoRAs", loras),
        ("Embeddings", ", ".join(params.get("embeddings") or [])),
        ("VAE", params.get("vae_id")),
        ("ControlNets", controlnets),
        ("Overlap", f"{params['overlap_width']} px" if "overlap_width" in params else None),
        ("Mask only", "yes" if params.get("only_mask") else None),
        ("Auto hint", ("on" if params.get("auto_hint") else "off") if controlnets else None),
        ("Guess mode", "on" if params.get("guess_mode") else None),
        (
            "IP-Adapter",
            f"{params['ip_adapter_id']} ({params['ip_adapter_scale']:g})" if params.get("ip_adapter_id") else None,
        ),
        ("Perturbed-attention guidance", "on" if params.get("self_attention") else None),
        ("CLIP skip", params.get("clip_skip")),
        ("Format", (params.get("output_format") or "").upper() + (", base64" if params.get("base64") else "")),
        ("Webhook", params.get("webhook")),
        ("Track id", params.get("track_id")),
    ]
    return [(label, str(value)) for label, value in fields if value not in (None, "", [])]


def _hires_text(hires: dict | None) -> str:
    if not hires:
        return ""
    steps = f", {hires['steps']} steps" if hires["steps"] else ""
    return f"to {hires['width']} × {hires['height']} by {hires['upscaler']}, strength {hires['strength']:g}{steps}"


# the playground's image inputs, by the job parameter that names a stored input
PLAYGROUND_IMAGES = {
    "init_image": "init_image",
    "mask_image": "mask_image",
    "image": "init_image",
    "control_image": "control_image",
}


def _playground_params(job: Job) -> dict:
    """What "run again in the playground" fills in: the request fields that ask for this job again (the
    kind's own map, JobParams.to_request), and where its stored input images are read back."""
    fields = job.parameters.to_request()
    for name in PLAYGROUND_IMAGES.keys() | {"url"}:  # the stored inputs stand in for the URLs sent
        fields.pop(name, None)
    inputs = {
        PLAYGROUND_IMAGES[field]: reverse("dashboard-job-input", args=[job.id, field])
        for field in job.parameters.inputs
        if field in PLAYGROUND_IMAGES and job.params.get(field) and not job.expired_at
    }
    return {"operation": job.operation, "fields": fields, "inputs": inputs}


@login_required
def job_input(request, job_id, field):
    """A stored input image of the user's own job (inputs are private: no public URL serves them)."""
    job = get_object_or_404(Job, pk=job_id, user=request.user)
    name = job.parameters.input_names().get(field)
    data = storage.read_bytes(name) if name else None
    if data is None:
        raise Http404()
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"  # stored as it was sent
    return HttpResponse(data, content_type=content_type, headers={"Cache-Control": "private, max-age=3600"})


DOCS = {"": "api.md", "deploy": "deploy.md", "adding-a-kind": "adding-a-kind.md"}


DOC_LINK = re.compile(r'href="([a-z-]+)\.md')


@lru_cache(maxsize=len(DOCS))
def _rendered(name: str, modified: float) -> str:
    """A docs/ page as HTML (cached until the file changes), its links to sibling pages made /docs/ URLs."""
    html = markdown.markdown((settings.BASE_DIR / "docs" / name).read_text(), extensions=["tables", "fenced_code"])
    urls = {
        file.removesuffix(".md"): reverse("docs-page", args=[slug]) if slug else reverse("docs")
        for slug, file in DOCS.items()
    }
    return DOC_LINK.sub(lambda link: f'href="{urls[link[1]]}' if link[1] in urls else link[0], html)


def docs(request, page=""):
    """The reference a user reads (docs/api.md, and the pages it links to), with the OpenAPI browser
    linked from it."""
    if page not in DOCS:
        raise Http404()
    path = settings.BASE_DIR / "docs" / DOCS[page]
    return render(request, "docs.html", {"html": _rendered(DOCS[page], path.stat().st_mtime)})


def media(request, path):
    """A stored file from MEDIA_ROOT by its exact name: nothing outside it, no directory listings."""
    if not path or path.endswith("/") or ".." in PurePosixPath(path).parts:
        raise Http404()
    try:
        return static.serve(request, path, document_root=settings.MEDIA_ROOT)
    except SuspiciousFileOperation as exc:
        raise Http404() from exc


@never_cache
def healthz(request):
    """200 with every check when database, Redis and a worker are up; 503 naming what is down."""
    report = monitoring.health()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)


@never_cache
def metrics(request):
    """Prometheus text format; needs `Authorization: Bearer <METRICS_TOKEN>` (off when no token is set)."""
    token = settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
        return HttpResponse("metrics need a bearer token\n", status=401 if token else 404, content_type="text/plain")
    return HttpResponse(monitoring.render_metrics(), content_type=CONTENT_TYPE_LATEST)
