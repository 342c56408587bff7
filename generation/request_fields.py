"""One map between the API's request fields and job parameters.

A client sends `model_id`, `lora_model` + `lora_strength`, `embeddings_model`, `vae`,
`num_inference_steps`, `scheduler` + `use_karras_sigmas` + `algorithm_type`, yes/no flags...; a job
stores `checkpoint`, `loras`, `embeddings`, `vae_id`, `steps`, a scheduler class with its options, booleans.
The serializers read requests through `to_parameters`; answers' `meta` and the playground's "run again"
write parameters back through `to_request`, so that what a job was made with can always be asked for
again, field for field (tests/test_request_fields.py checks the round trip).
"""

import math

from generation.params import (
    DiffusionParams,
    FromImageParams,
    InpaintParams,
    InvalidInput,
    JobParams,
    SuperResolutionParams,
)

MAX_LORA_STRENGTH = 4.0


def library_ids(text: str | None) -> list[str]:
    """A comma-separated list of library ids."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _loras(lora_model: str | None, lora_strength: str | None) -> list[dict]:
    """`lora_model` ids with their `lora_strength`: one value for all, or one per LoRA (default 1)."""
    ids = library_ids(lora_model)
    try:
        strengths = [float(value) for value in library_ids(lora_strength)] or [1.0]
    except ValueError as exc:
        raise InvalidInput(
            "lora_strength", "The lora strength must be a number or a comma-separated list of numbers."
        ) from exc
    if len(strengths) == 1:
        strengths *= len(ids)
    if len(strengths) != len(ids) or not all(math.isfinite(value) for value in strengths):
        raise InvalidInput("lora_strength", "The lora strength must be one value, or one per LoRA.")
    clamped = (min(MAX_LORA_STRENGTH, max(-MAX_LORA_STRENGTH, value)) for value in strengths)
    return [{"id": lora, "strength": strength} for lora, strength in zip(ids, clamped)]


def to_parameters(data: dict, model_library: bool) -> dict:
    """The parameters set by request fields of another name (`data`: a generation serializer's validated
    values). The model fields choose from the library only on the paths that do (`model_library`)."""
    values = {"steps": data["steps"] or data["num_inference_steps"]}
    if model_library:
        values.update(
            checkpoint=(data["model_id"] or "").strip(),
            loras=_loras(data["lora_model"], data["lora_strength"]),
            embeddings=library_ids(data["embeddings_model"]),
            vae_id=(data["vae"] or "").strip(),
        )
    return values


def _flag(value: bool) -> str:
    return "yes" if value else "no"


def _scheduler_options(options: dict) -> dict:
    """The scheduler options as their request fields (only those the request set)."""
    fields = {}
    if "use_karras_sigmas" in options:
        fields["use_karras_sigmas"] = _flag(options["use_karras_sigmas"])
    if "algorithm_type" in options:
        fields["algorithm_type"] = options["algorithm_type"]
    return fields


def to_request(params: JobParams) -> dict:
    """The request fields that ask for `params` again (input images as the URLs the client sent, left out
    where it sent the image inline; fields without a value left out)."""
    fields = {"samples": params.samples, "seed": params.seed, "base64": _flag(params.base64)}
    if isinstance(params, SuperResolutionParams):
        fields.update(
            url=params.image_url, scale=params.scale, model_id=params.upscaler, face_enhance=_flag(params.face_enhance)
        )
    if isinstance(params, DiffusionParams):
        fields.update(_diffusion_fields(params))
    return {name: value for name, value in fields.items() if value is not None}


def _diffusion_fields(params: DiffusionParams) -> dict:
    fields = dict(
        prompt=params.prompt,
        negative_prompt=params.negative_prompt,
        width=params.width,
        height=params.height,
        num_inference_steps=params.steps,
        guidance_scale=params.guidance_scale,
        scheduler=params.scheduler,
        **_scheduler_options(params.scheduler_options),
        safety_checker=_flag(params.safety_checker),
        clip_skip=params.clip_skip,
        self_attention=_flag(params.self_attention),
        upscale=params.upscale if params.upscale > 1 else "no",  # "1" would read as "yes" (2x)
        output_format=params.output_format,
        model_id=params.checkpoint,
        lora_model=",".join(lora["id"] for lora in params.loras),
        lora_strength=",".join(str(lora["strength"]) for lora in params.loras),
        embeddings_model=",".join(params.embeddings),
        vae=params.vae_id,
    )
    if isinstance(params, FromImageParams):
        fields.update(strength=params.strength, init_image=params.init_image_url)
    if isinstance(params, InpaintParams):
        fields["mask_image"] = params.mask_image_url
    return fields
