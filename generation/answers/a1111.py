"""Every body the AUTOMATIC1111 API front-end (`/sdapi/v1/...`, generation/frontends/a1111.py) answers,
with its HTTP status, in A1111's shapes: `{"images", "parameters", "info"}` where `info` is a JSON string
with A1111's infotexts, FastAPI's `{"detail": ...}` errors (422 with a list for a bad field). Here,
below the API packages, so the event loop's wait (generation/web/waiting.py) builds the answer of a job it
waited for."""

import base64
import json

from generation.inputs import storage
from generation.kinds.base import DiffusionParams
from generation.models import Job


def detail(status: int, text: str) -> tuple[int, dict]:
    return status, {"detail": text}


def invalid(field: str, text: str) -> tuple[int, dict]:
    return 422, {"detail": [{"loc": ["body", field], "msg": text, "type": "value_error"}]}


def invalid_key() -> tuple[int, dict]:
    return detail(401, "Incorrect credentials")


def rate_limited(text: str = "Rate limit exceeded: slow down.") -> tuple[int, dict]:
    return detail(429, text)


def no_credits(text: str) -> tuple[int, dict]:
    return detail(402, text)


def unavailable() -> tuple[int, dict]:
    return detail(503, "The server is temporarily unavailable; try again in a few seconds.")


def failed(text: str) -> tuple[int, dict]:
    return 500, {"error": "GenerationError", "detail": text, "body": "", "errors": text}


def server_error() -> tuple[int, dict]:
    return failed("Something went wrong, try again")


def _encoded(name: str) -> str:
    return base64.b64encode(storage.read_bytes(name) or b"").decode()


def _unfinished(job: Job) -> tuple[int, dict] | None:
    if job.is_finished and job.status != Job.Status.SUCCESS:
        return failed(job.error or job.status)
    if not job.is_finished:
        return detail(504, f"Still generating (job {job.id}); it will be in your history when done.")
    return None


def _hires(params: DiffusionParams) -> dict:
    """A hires fix as A1111 writes it in an infotext (none: empty)."""
    hires = params.second_pass()
    if not hires:
        return {}
    return {
        "Denoising strength": hires["strength"],
        "Hires resize": f"{hires['width']}x{hires['height']}",
        "Hires steps": hires["steps"] or None,
        "Hires upscaler": hires["upscaler"],
    }


def infotext(params: DiffusionParams, seed: int, options: dict) -> str:
    """A1111's text under an image: the prompt, the negative prompt, then the settings."""
    settings = {
        "Steps": params.steps,
        "Sampler": options["sampler_name"],
        "Schedule type": options["scheduler"],
        "CFG scale": params.guidance_scale,
        "Seed": seed,
        "Size": f"{params.width}x{params.height}",
        "Model": params.checkpoint,
        "Denoising strength": getattr(params, "strength", None),
        **_hires(params),
        "Lora hashes": ", ".join(f"{lora['id']}: {lora['strength']:g}" for lora in params.loras) or None,
    }
    text = ", ".join(f"{name}: {value}" for name, value in settings.items() if value not in (None, ""))
    negative = f"\nNegative prompt: {params.negative_prompt}" if params.negative_prompt else ""
    return f"{params.prompt}{negative}\n{text}"


def images(job: Job, options: dict) -> tuple[int, dict]:
    """txt2img's and img2img's answer for the finished job."""
    if (refusal := _unfinished(job)) is not None:
        return refusal
    params = job.parameters
    seeds = job.seeds or params.seeds
    info = {
        "prompt": params.prompt,
        "all_prompts": [params.prompt] * len(seeds),
        "negative_prompt": params.negative_prompt,
        "all_negative_prompts": [params.negative_prompt] * len(seeds),
        "seed": seeds[0],
        "all_seeds": seeds,
        "subseed": -1,
        "all_subseeds": [-1] * len(seeds),
        "width": params.width,
        "height": params.height,
        "sampler_name": options["sampler_name"],
        "scheduler": options["scheduler"],
        "cfg_scale": params.guidance_scale,
        "steps": params.steps,
        "batch_size": options["batch_size"],
        "n_iter": options["n_iter"],
        "denoising_strength": getattr(params, "strength", None),
        "sd_model_name": params.checkpoint,
        "sd_model_hash": None,
        "clip_skip": params.clip_skip or 1,
        "restore_faces": False,
        "infotexts": [infotext(params, seed, options) for seed in seeds],
        "extra_generation_params": _hires(params),
        "job_timestamp": job.queued_at.strftime("%Y%m%d%H%M%S"),
        "job_id": job.id,
        "not_applied": params.not_applied,  # beyond A1111: what this deployment could only approximate
    }
    pictures = [_encoded(name) for name in job.output_names] if options["send_images"] else []
    return 200, {"images": pictures, "parameters": options["parameters"], "info": json.dumps(info)}


def upscaled(job: Job) -> tuple[int, dict]:
    """extra-single-image's answer."""
    if (refusal := _unfinished(job)) is not None:
        return refusal
    return 200, {"html_info": "", "image": _encoded(job.output_names[0])}


def after_wait(job_id: int, options: dict) -> tuple[int, dict]:
    """The answer of the request that waited: extra-single-image's (`options` says "upscaled") or images."""
    job = Job.objects.get(pk=job_id)
    return upscaled(job) if options.get("upscaled") else images(job, options)


def progress(job: Job | None, step: int, total: int, eta: float | None, preview: bytes | None) -> dict:
    """`/progress` for this key's job in flight (none: idle, as A1111 answers between jobs)."""
    state = {
        "skipped": False,
        "interrupted": False,
        "stopping_generation": False,
        "job": f"job {job.id}" if job else "",
        "job_count": 1 if job else 0,
        "job_timestamp": job.queued_at.strftime("%Y%m%d%H%M%S") if job else "0",
        "job_no": 0,
        "sampling_step": step,
        "sampling_steps": total,
    }
    return {
        "progress": round(step / total, 3) if total else 0.0,
        "eta_relative": round(eta, 2) if eta is not None else 0.0,
        "state": state,
        "current_image": base64.b64encode(preview).decode() if preview else None,
        "textinfo": None,
    }
