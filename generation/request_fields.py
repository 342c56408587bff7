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
    CONTROL_TYPES,
    MAX_CONTROLNETS,
    ControlNetParams,
    DiffusionParams,
    FromImageParams,
    ImgMixerParams,
    InpaintParams,
    InvalidInput,
    JobParams,
    OutpaintParams,
    RemoveBgParams,
    SuperResolutionParams,
    Text2ImgParams,
)

MAX_LORA_STRENGTH = 4.0
CONDITIONING_SCALES = (0.1, 5.0)


def library_ids(text: str | None) -> list[str]:
    """A comma-separated list of library ids."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _per_model(text: str | None, count: int, field: str, default, parse=str) -> list:
    """A comma-separated field with one value for all `count` models or one per model (`default` when
    empty). InvalidInput names `field` when the values do not parse or do not match the models."""
    try:
        values = [parse(value) for value in library_ids(text)] or [default]
    except ValueError as exc:
        raise InvalidInput(
            field, f"The {_label(field)} must be a number or a comma-separated list of numbers."
        ) from exc
    if len(values) == 1:
        values *= count
    if len(values) != count:
        raise InvalidInput(field, f"The {_label(field)} must be one value, or one per model.")
    return values


def _label(field: str) -> str:
    return field.replace("_", " ")


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _loras(lora_model: str | None, lora_strength: str | None) -> list[dict]:
    """`lora_model` ids with their `lora_strength`: one value for all, or one per LoRA (default 1)."""
    ids = library_ids(lora_model)
    strengths = _per_model(lora_strength, len(ids), "lora_strength", 1.0, _number)
    clamped = (min(MAX_LORA_STRENGTH, max(-MAX_LORA_STRENGTH, value)) for value in strengths)
    return [{"id": lora, "strength": strength} for lora, strength in zip(ids, clamped)]


def controlnets(data: dict) -> list[dict]:
    """`controlnet_model` ids with their `controlnet_conditioning_scale` (one for all or one each, clamped
    to 0.1-5, default 1) and `controlnet_type` (one for all or one each; default: the model's id when that
    names a type, as the hosted service's ids do)."""
    ids = library_ids(data["controlnet_model"])
    if not ids:
        raise InvalidInput("controlnet_model", "The controlnet model field is required.")
    if len(ids) > MAX_CONTROLNETS:
        raise InvalidInput("controlnet_model", f"At most {MAX_CONTROLNETS} ControlNets can be combined.")
    scales = _per_model(data["controlnet_conditioning_scale"], len(ids), "controlnet_conditioning_scale", 1.0, _number)
    given_types = _per_model(data["controlnet_type"], len(ids), "controlnet_type", "")
    types = [kind.lower() or (model if model in CONTROL_TYPES else "") for kind, model in zip(given_types, ids)]
    if unknown := [kind for kind in types if kind and kind not in CONTROL_TYPES]:
        raise InvalidInput(
            "controlnet_type", f"Unknown controlnet type {unknown[0]!r}; the types are {', '.join(CONTROL_TYPES)}."
        )
    low, high = CONDITIONING_SCALES
    return [
        {"id": model, "scale": min(high, max(low, scale)), "type": kind}
        for model, scale, kind in zip(ids, scales, types)
    ]


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
            ip_adapter_id=(data["ip_adapter_id"] or "").strip(),
            ip_adapter_scale=float(data["ip_adapter_scale"] if data["ip_adapter_scale"] is not None else 0.6),
        )
    return values


def _flag(value: bool) -> str:
    return "yes" if value else "no"


def scheduler_option_fields(options: dict) -> dict:
    """The scheduler options as their request fields, named as the options (only those the request set)."""
    return {name: _flag(value) if isinstance(value, bool) else value for name, value in options.items()}


def _hires_fields(hires: dict) -> dict:
    """A hires fix as A1111's fields (its size as hr_resize_x/y: exact whatever the first pass's)."""
    if not hires:
        return {}
    return {
        "enable_hr": "yes",
        "hr_upscaler": hires["upscaler"],
        "hr_resize_x": hires["width"],
        "hr_resize_y": hires["height"],
        "hr_second_pass_steps": hires["steps"],
        "denoising_strength": hires["strength"],
    }


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
    if isinstance(params, RemoveBgParams):
        fields.update(
            image=params.image_url,
            only_mask=_flag(params.only_mask),
            inverse_mask=_flag(params.inverse_mask),
            post_process_mask=_flag(params.post_process_mask),
        )
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
        **scheduler_option_fields(params.scheduler_options),
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
    if params.ip_adapter_id:
        fields.update(
            ip_adapter_id=params.ip_adapter_id,
            ip_adapter_scale=params.ip_adapter_scale,
            ip_adapter_image=params.ip_adapter_image_url,
        )
    if isinstance(params, Text2ImgParams):
        fields.update(_hires_fields(params.hires))
    if isinstance(params, FromImageParams):
        fields.update(strength=params.strength, init_image=params.init_image_url)
    if isinstance(params, InpaintParams):
        fields["mask_image"] = params.mask_image_url
    if isinstance(params, ControlNetParams):
        fields.update(_controlnet_fields(params))
    if isinstance(params, ImgMixerParams):
        urls = params.init_image_urls
        fields["init_image"] = urls if urls and None not in urls else None
        fields["ip_adapter_image"] = None  # the mixed images are its image prompts
    if isinstance(params, OutpaintParams):
        fields.update(image=params.image_url, overlap_width=params.overlap_width)
    return fields


def _controlnet_fields(params: ControlNetParams) -> dict:
    urls = params.control_image_urls
    return dict(
        controlnet_model=",".join(model["id"] for model in params.controlnets),
        controlnet_type=",".join(model["type"] for model in params.controlnets),
        controlnet_conditioning_scale=",".join(str(model["scale"]) for model in params.controlnets),
        auto_hint=_flag(params.auto_hint),
        guess_mode=_flag(params.guess_mode),
        strength=params.strength,
        init_image=params.init_image_url,
        mask_image=params.mask_image_url,
        control_image=(urls[0] if len(urls) == 1 else urls) if urls and None not in urls else None,
    )
