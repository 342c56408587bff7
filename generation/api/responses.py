"""Response bodies built from a Job, exactly as ../shared/api-v3.md spells them."""

from pathlib import Path

from django.conf import settings

from generation import outputs, selectors
from generation.api import errors
from generation.models import Job

PROCESSING_MESSAGE = "Try to fetch request after given estimated time"


def _name(path_or_id: str, default: str) -> str:
    return Path(path_or_id.rstrip("/")).name if path_or_id else default


def meta(job: Job) -> dict:
    params = job.params
    return {
        "H": params["height"],
        "W": params["width"],
        "enable_attention_slicing": "true",
        "file_prefix": str(job.file_prefix),
        "guidance_scale": params["guidance_scale"],
        "model": _name(settings.SDXL_MODEL, "sdxl"),
        "n_samples": params["samples"],
        "negative_prompt": params["negative_prompt"] or "",
        "outdir": "out",
        "prompt": params["prompt"],
        "revision": "fp16",
        "safetychecker": "no",
        "seed": job.seed,
        "steps": params["steps"],
        "vae": _name(settings.SDXL_VAE, "default"),
        "scheduler": params["scheduler"],
    }


def output_urls(job: Job) -> list[str]:
    return [outputs.absolute_url(job.base_url, name) for name in job.output_names]


def future_links(job: Job) -> list[str]:
    return [outputs.absolute_url(job.base_url, job.output_name(i)) for i in range(job.params["samples"])]


def fetch_url(job: Job) -> str:
    return f"{job.base_url.rstrip('/')}/api/v3/fetch/{job.id}"


def success(job: Job) -> dict:
    return {
        "status": "success",
        "generationTime": float(job.generation_time),
        "id": job.id,
        "output": output_urls(job),
        "meta": meta(job),
    }


def failed(job: Job) -> dict:
    return {**errors.message("failed", job.error or "Failed, Try Again"), "id": job.id, "output": []}


def processing(job: Job) -> dict:
    """The answer to a generation request whose job is not finished yet."""
    return {
        "status": "processing",
        "tip": settings.GENERATION_TIP,
        "eta": selectors.eta_seconds(job),
        **errors.message("processing", PROCESSING_MESSAGE),
        "fetch_result": fetch_url(job),
        "id": job.id,
        "output": [],
        "future_links": future_links(job),
        "meta": meta(job),
    }


def fetch_processing(job: Job) -> dict:
    return {
        **errors.message("processing", "Request processing"),
        "id": job.id,
        "output": [],
        "eta": selectors.eta_seconds(job),
    }


def for_request(job: Job) -> dict:
    """Body for the generation request itself."""
    if job.status == Job.Status.SUCCESS:
        return success(job)
    if job.status == Job.Status.FAILED:
        return failed(job)
    return processing(job)


def for_fetch(job: Job) -> dict:
    if job.status == Job.Status.SUCCESS:
        return success(job)
    if job.status == Job.Status.FAILED:
        return failed(job)
    return fetch_processing(job)
