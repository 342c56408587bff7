"""The answers about a job, built from the Job exactly as the hosted v3 API spells them: what a generation
request, fetch and a webhook delivery send. Here, below the API package, so that webhooks (which the
worker sends) use them without the worker importing the API."""

from django.conf import settings
from django.dispatch import receiver

from generation import kinds
from generation.answers import selectors
from generation.answers.envelope import message
from generation.inputs import storage
from generation.kinds.base import ModelType, deployment_model, deployment_vae
from generation.models import Job
from generation.queueing import queue
from generation.signals import job_settled

PROCESSING_MESSAGE = "Try to fetch request after given estimated time"


@receiver(job_settled)
def keep_final_answer(sender, job: Job, **kwargs):
    """A final job's fetch answer, kept in Redis: the requests waiting on it and fetch read it there,
    without the database (never raises for Redis)."""
    queue.cache_answer(job.id, job.user_id, for_fetch(job), min(queue.ANSWER_TTL, storage.seconds_kept(job)))


def _input_url(job: Job, url: str | None, name: str) -> str:
    """The URL the client sent for an input image, else where we stored it."""
    return url or storage.absolute_url(job.base_url, name)


def meta(job: Job) -> dict:
    """v3's meta keys, after the request fields that would ask for this job again (beyond v3, named as a
    request names them: `model_id`, `lora_model`, `num_inference_steps`, ...), then its input images."""
    params = job.parameters
    hints = _hint_urls(job) if job.status == Job.Status.SUCCESS else None
    inputs = params.meta_inputs(lambda url, name: _input_url(job, url, name), hints)
    if not params.generates:  # background removal: no prompt, no model settings
        return {
            **params.to_request(),
            "H": params.height,
            "W": params.width,
            "file_prefix": str(job.file_prefix),
            "seed": job.seed,
            "not_applied": params.not_applied,
            **_notes(params),
            **inputs,
        }
    width, height = params.output_size
    return {
        **params.to_request(),
        "H": height,
        "W": width,
        "enable_attention_slicing": "true",
        "file_prefix": str(job.file_prefix),
        "guidance_scale": params.guidance_scale,
        "model": params.checkpoint or deployment_model(),
        "n_samples": params.samples,
        "negative_prompt": params.negative_prompt or "",
        "outdir": "out",
        "prompt": params.prompt,
        "revision": "fp16",
        "safetychecker": "yes" if params.safety_checker and settings.SAFETY_CHECKER_MODEL else "no",
        "seed": job.seed,
        "steps": params.steps,
        "vae": params.vae_id or deployment_vae(),
        "scheduler": params.scheduler,
        "seeds": job.seeds or params.seeds,  # beyond v3
        "not_applied": params.not_applied,  # beyond v3: request fields understood but not applied here
        "loras": params.loras,  # beyond v3: the library models used
        "embeddings": params.embeddings,
        **({"sampling_from": params.sampling_from} if params.sampling_from else {}),  # a few-step model's own
        **_notes(params),
        **inputs,
    }


def _hint_urls(job: Job) -> list[str]:
    """The control images a ControlNet job's models saw, kept beside its outputs."""
    return [storage.absolute_url(job.base_url, name) for name in storage.hint_names(job)]


DEMO_UPSCALER = (
    "upscaled by a plain Lanczos resize (demo mode, UPSCALER_DEMO): install the official .pth files in UPSCALER_DIR "
    "for real upscaling"
)


def _notes(params) -> dict:
    return {"demo": DEMO_UPSCALER} if params.demo_upscaler else {}


def _short_meta(job: Job) -> dict:
    """Answers without meta (super_resolution) carry one when a request field was not applied, or when the
    upscaler was a demo network."""
    params = job.parameters
    meta = {**({"not_applied": params.not_applied} if params.not_applied else {}), **_notes(params)}
    return {"meta": meta} if meta else {}


def _extras(job: Job) -> dict:
    extras = {}
    if job.params.get("webhook"):
        extras["webhook_status"] = job.webhook_status
    if job.params.get("track_id") is not None:
        extras["track_id"] = job.params["track_id"]
    return extras


def future_links(job: Job) -> list[str]:
    names = [job.output_name(i) for i in range(job.params["samples"])]
    return [storage.absolute_url(job.base_url, name) for name in storage.delivered_names(job, names)]


V3_FETCH_PATH = "/api/v3/fetch/"


def fetch_url(job: Job, fetch_path: str = V3_FETCH_PATH) -> str:
    """Where the job's result is fetched, in the API family the request came in on."""
    return f"{job.base_url.rstrip('/')}{fetch_path}{job.id}"


def success(job: Job) -> dict:
    if kinds.get(job.kind).single_output:
        return {
            "status": "success",
            "generationTime": float(job.generation_time),
            "id": job.id,
            "output": storage.output_urls(job)[0],
            "queue_time": _queue_time(job),
            **_extras(job),
            **_short_meta(job),
        }
    urls = storage.output_urls(job)
    body = {
        "status": "success",
        "generationTime": float(job.generation_time),
        "id": job.id,
        "output": urls,
        "proxy_links": urls,  # the later hosted API's name for the same URLs
        "meta": meta(job),
        "queue_time": _queue_time(job),
        **_extras(job),
    }
    if job.nsfw is not None:
        body["nsfw_content_detected"] = job.nsfw
    if job.params.get("base64"):
        body["output_base64"] = [storage.read_text(name) for name in storage.delivered_names(job, job.output_names)]
    return body


def _queue_time(job: Job) -> float:
    """Seconds the job waited for a worker (beyond v3)."""
    return round(job.queue_time or 0.0, 3)


def _standing(job: Job) -> dict:
    """Where an unfinished job stands: ETA, and (beyond v3) its queue position and progress."""
    position = selectors.queue_position(job)
    standing = {
        "eta": selectors.eta_seconds(job, position),
        "queue_position": position,
        "progress": selectors.progress(job),
    }
    if preview := storage.preview_url(job):
        standing["preview"] = preview
    return standing


def failed(job: Job) -> dict:
    body = {**message("failed", job.error or "Failed, Try Again"), "id": job.id, "output": [], **_extras(job)}
    if job.status == Job.Status.CANCELED:
        body["canceled"] = True
    return body


def processing(job: Job, fetch_path: str = V3_FETCH_PATH) -> dict:
    """The answer to a generation request whose job is not finished yet."""
    body = {
        **message("processing", PROCESSING_MESSAGE),
        "tip": settings.GENERATION_TIP,
        **_standing(job),
        "fetch_result": fetch_url(job, fetch_path),
        "id": job.id,
        "output": [],
        "future_links": future_links(job),
        **_extras(job),
    }
    body.update(_short_meta(job) if kinds.get(job.kind).single_output else {"meta": meta(job)})
    return body


def fetch_processing(job: Job) -> dict:
    return {
        **message("processing", "Request processing"),
        "id": job.id,
        "output": [],
        **_standing(job),
    }


def for_request(job: Job, fetch_path: str = V3_FETCH_PATH) -> dict:
    """Body for the generation request itself."""
    if job.status == Job.Status.SUCCESS:
        return success(job)
    if job.is_finished:
        return failed(job)
    return processing(job, fetch_path)


def expired(job: Job) -> dict:
    return {
        **message("error", "Request expired: its images were deleted after the retention period"),
        "id": job.id,
        "output": [],
    }


def for_fetch(job: Job) -> dict:
    if job.expired_at:
        return expired(job)
    if job.status == Job.Status.SUCCESS:
        return success(job)
    if job.is_finished:
        return failed(job)
    return fetch_processing(job)


def dashboard_status(job: Job) -> dict:
    """The job page's and playground's view of a job: status, position, progress 0..1, ETA, outputs."""
    finished = job.is_finished
    return {
        "id": job.id,
        "operation": job.operation,
        "status": job.status,
        "seeded": job.parameters.generates,  # its seeds made its images (an upscale has none)
        "seeds": job.seeds,
        "size": [job.params.get("width"), job.params.get("height")],
        "preview": storage.preview_url(job),
        "queue_position": selectors.queue_position(job),
        "progress": selectors.progress(job),
        "eta": None if finished else selectors.eta_seconds(job),
        "outputs": storage.output_urls(job) if job.status == Job.Status.SUCCESS else [],
        "hints": _hint_urls(job) if job.status == Job.Status.SUCCESS else [],
        "error": job.error,
        "generation_time": job.generation_time,
    }


def stream_progress(event: dict, form: str, running: bool = True) -> dict:
    """The fields of a streamed job's state that a worker's progress event changes, in the stream's form
    (its preview only when the event has one: the last one stays)."""
    fields = {"progress": event["progress"], "queue_position": 0}
    fields.update((name, event[name]) for name in ("eta", "preview", "phase") if event.get(name) is not None)
    if form == "dashboard" and running:
        fields["status"] = Job.Status.RUNNING
    return fields


# the hosted model_list's category of each type of library model: the type's own name but for two
MODEL_CATEGORIES = {
    **{model_type: model_type.value for model_type in ModelType},
    ModelType.CHECKPOINT: "stable_diffusion_xl",
    ModelType.EMBEDDING: "embeddings",
}


def model_list(models) -> list[dict]:
    """The dreambooth API's model_list: one entry per model a key's plan may use."""
    return [
        {
            "model_id": model.public_id,
            "model_name": model.name or model.public_id,
            "model_category": MODEL_CATEGORIES[model.model_type],
            "kind": model.model_type,  # the wire name
            "description": model.description,
            "status": "model_ready",
            "is_default": model.is_default,
            "credit_multiplier": float(model.credit_multiplier),
        }
        for model in models
    ]
