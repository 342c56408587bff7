"""Request serializers: lenient input in, typed job parameters out (generation/params.py).

Validation does no I/O: an image given by URL is only checked here and fetched once the request is
admitted (services.request_generation); an inline (base64) image is decoded. `validated_data` is
{"params": JobParams, "inputs": {parameter field: images.ImageSource}, "instant": bool,
"idempotency_key": str}.
"""

import math
import secrets

from django.conf import settings
from rest_framework import serializers

from generation import safe_http, schedulers, services
from generation.api.fields import (
    InputImageField,
    LenientBooleanField,
    LenientNumberField,
    LenientTextField,
    ScalarField,
    UpscaleField,
)
from generation.params import (
    UPSCALE_MODELS,
    Img2ImgParams,
    InpaintParams,
    SuperResolutionParams,
    Text2ImgParams,
    deployment_model,
    deployment_vae,
)

MAX_SEED = 2**32 - 1


class JobSerializer(serializers.Serializer):
    """Fields every kind of job accepts: delivery and request options."""

    webhook = LenientTextField(max_length=2000, required=False, default=None)
    track_id = ScalarField(default=None)
    instant_response = LenientBooleanField(default=False)
    idempotency_key = LenientTextField(max_length=200, required=False, default="")

    def validate_webhook(self, url):
        """A syntactically usable http(s) URL (its address is checked before the job is admitted)."""
        if url is None:
            return None
        try:
            safe_http.split_url(url.strip())
        except safe_http.UnsafeURL as exc:
            raise serializers.ValidationError("The webhook must be a valid URL.") from exc
        return url.strip()

    def submission(self, data, params, inputs=None) -> dict:
        params.webhook, params.track_id = data["webhook"], data["track_id"]
        return {
            "params": params,
            "inputs": inputs or {},
            "instant": data["instant_response"],
            "idempotency_key": data["idempotency_key"],
        }


OUTPUT_FORMATS = {"png": "png", "jpg": "jpg", "jpeg": "jpg"}


def _reason(field: str, reason: str) -> dict:
    return {"field": field, "reason": reason}


MODEL_FIELDS = ("model_id", "lora_model", "lora_strength", "embeddings_model", "vae")


def not_applied(data: dict, model_library: bool = False) -> list[dict]:
    """The documented fields of this request that this deployment understood but did not apply, each with
    a one-line reason. A field that is applied is never named. The model fields are applied on the paths
    that choose models (`model_library`); v3 requests use the deployment's default model."""
    model, vae = deployment_model(), deployment_vae()
    library = "v3 requests use the deployment's default model; the v4, v6, v7 and v1 paths choose models"
    checks = [
        (
            "tomesd",
            data.get("tomesd"),
            "token merging (tomesd) patches Stable Diffusion 1.x UNets and is not correct for SDXL",
        ),
        (
            "panorama",
            data.get("panorama"),
            "panorama (tiled MultiDiffusion) is not available for SDXL here; the image has the requested size",
        ),
        (
            "multi_lingual",
            data.get("multi_lingual"),
            "no translation model is installed; the prompt is used as written",
        ),
        ("face_enhance", data.get("face_enhance"), "no face restoration model is installed"),
        (
            "temp",
            data.get("temp"),
            f"outputs are kept for OUTPUT_RETENTION_DAYS ({settings.OUTPUT_RETENTION_DAYS}) days",
        ),
        ("model_id", data.get("model_id") not in (None, model), f"{library}; the default model was used"),
        ("lora_model", data.get("lora_model"), f"{library}; no LoRA was applied"),
        ("lora_strength", data.get("lora_strength") is not None, f"{library}; no LoRA was applied"),
        ("embeddings_model", data.get("embeddings_model"), f"{library}; no embedding was loaded"),
        ("vae", data.get("vae") not in (None, vae), f"{library}; the model's own VAE was used"),
    ]
    return [
        _reason(field, reason)
        for field, given, reason in checks
        if given and not (model_library and field in MODEL_FIELDS)
    ]


def _ids(text: str | None) -> list[str]:
    """A comma-separated list of library ids."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _loras(data: dict) -> list[dict]:
    """`lora_model` ids with their `lora_strength`: one value for all, or one per LoRA (default 1)."""
    ids = _ids(data["lora_model"])
    try:
        strengths = [float(value) for value in _ids(data["lora_strength"])] or [1.0]
    except ValueError as exc:
        raise serializers.ValidationError(
            {"lora_strength": ["The lora strength must be a number or a comma-separated list of numbers."]}
        ) from exc
    if len(strengths) == 1:
        strengths *= len(ids)
    if len(strengths) != len(ids) or not all(math.isfinite(value) for value in strengths):
        raise serializers.ValidationError({"lora_strength": ["The lora strength must be one value, or one per LoRA."]})
    return [{"id": lora, "strength": min(4.0, max(-4.0, value))} for lora, value in zip(ids, strengths)]


def size_field(default=512):
    return LenientNumberField(minimum=64, maximum=1024, integer=True, multiple_of=8, default=default)


class GenerationSerializer(JobSerializer):
    """Fields shared by text2img, img2img and inpaint."""

    params_class = Text2ImgParams

    prompt = LenientTextField(max_length=20000)
    negative_prompt = LenientTextField(max_length=20000, required=False, default="")
    samples = LenientNumberField(minimum=1, maximum=4, integer=True, default=1)
    num_inference_steps = LenientNumberField(minimum=1, maximum=50, integer=True, default=30)
    guidance_scale = LenientNumberField(minimum=1, maximum=20, default=7.5)
    seed = LenientNumberField(minimum=-1, maximum=MAX_SEED, integer=True, default=None)  # negative: random
    scheduler = LenientTextField(max_length=100, required=False, default=schedulers.DEFAULT_SCHEDULER)
    use_karras_sigmas = LenientBooleanField(default=None)
    algorithm_type = LenientTextField(max_length=50, required=False, default=None)
    output_format = LenientTextField(max_length=10, required=False, default="png")
    base64 = LenientBooleanField(default=False)
    safety_checker = LenientBooleanField(default=False)
    # the hosted service's later fields: applied, or named in meta.not_applied (see `not_applied`)
    steps = LenientNumberField(minimum=1, maximum=50, integer=True, default=None)  # num_inference_steps
    upscale = UpscaleField()
    enhance_prompt = LenientBooleanField(default=False)
    self_attention = LenientBooleanField(default=False)
    clip_skip = LenientNumberField(minimum=1, maximum=12, integer=True, default=None)
    tomesd = LenientBooleanField(default=False)
    panorama = LenientBooleanField(default=False)
    multi_lingual = LenientBooleanField(default=False)
    face_enhance = LenientBooleanField(default=False)
    temp = LenientBooleanField(default=False)
    model_id = LenientTextField(max_length=200, required=False, default=None)
    lora_model = LenientTextField(max_length=2000, required=False, default=None)
    lora_strength = LenientTextField(max_length=2000, required=False, default=None)
    embeddings_model = LenientTextField(max_length=2000, required=False, default=None)
    vae = LenientTextField(max_length=200, required=False, default=None)

    def validate(self, data):
        resolved = schedulers.resolve(data["scheduler"], data["use_karras_sigmas"], data["algorithm_type"])
        if resolved is None:
            raise serializers.ValidationError({"scheduler": ["The selected scheduler is invalid."]})
        seed = data["seed"]
        params = self.params_class(
            prompt=f"{data['prompt']}, {settings.PROMPT_ENHANCEMENT}" if data["enhance_prompt"] else data["prompt"],
            negative_prompt=data["negative_prompt"],
            width=data["width"],
            height=data["height"],
            samples=data["samples"],
            steps=data["steps"] or data["num_inference_steps"],
            guidance_scale=float(data["guidance_scale"]),
            seed=seed if seed is not None and seed >= 0 else secrets.randbelow(MAX_SEED + 1),
            scheduler=resolved[0],
            scheduler_options=resolved[1],
            output_format=OUTPUT_FORMATS.get(data["output_format"].strip().lower(), "png"),
            base64=data["base64"],
            safety_checker=data["safety_checker"],
            clip_skip=data["clip_skip"],
            self_attention=data["self_attention"],
            upscale=data["upscale"],
            not_applied=not_applied(data, self.context.get("model_library", False)),
        )
        if self.context.get("model_library"):
            params.checkpoint = (data["model_id"] or "").strip()
            params.loras = _loras(data)
            params.embeddings = _ids(data["embeddings_model"])
            params.vae_id = (data["vae"] or "").strip()
        return self.submission(data, params, self.image_inputs(data, params))

    def image_inputs(self, data, params) -> dict:
        return {}


class Text2ImgSerializer(GenerationSerializer):
    width = size_field()
    height = size_field()


class Img2ImgSerializer(GenerationSerializer):
    """Width/height default to the init image's size (fit in 1024, multiples of 8)."""

    params_class = Img2ImgParams
    init_image = InputImageField()
    width = size_field(default=None)
    height = size_field(default=None)
    strength = LenientNumberField(minimum=0, maximum=1, default=None)
    prompt_strength = LenientNumberField(minimum=0, maximum=1, default=None)

    def image_inputs(self, data, params):
        strength = data["strength"] if data["strength"] is not None else data["prompt_strength"]
        params.strength = 0.7 if strength is None else float(strength)
        params.init_image_url = data["init_image"].url
        return {"init_image": data["init_image"]}


class InpaintSerializer(Img2ImgSerializer):
    """White in the mask is repainted, black is kept; a mask of another size is resized to the image."""

    params_class = InpaintParams
    mask_image = InputImageField()

    def image_inputs(self, data, params):
        params.mask_image_url = data["mask_image"].url
        return {**super().image_inputs(data, params), "mask_image": data["mask_image"]}


class SuperResolutionSerializer(JobSerializer):
    url = InputImageField(required=False, default=None)
    init_image = InputImageField(required=False, default=None)
    scale = LenientNumberField(minimum=2, maximum=4, integer=True, default=4)
    model_id = LenientTextField(max_length=100, required=False, default=None)
    face_enhance = LenientBooleanField(default=False)

    def validate(self, data):
        given = data["url"] or data["init_image"]
        if given is None:
            raise serializers.ValidationError({"url": ["The url field is required."]})
        model_id = data["model_id"] if data["model_id"] in UPSCALE_MODELS else UPSCALE_MODELS[0]
        skipped = not_applied({"face_enhance": data["face_enhance"]})
        if data["model_id"] not in (None, model_id):
            skipped.append(
                _reason("model_id", f"no upscaler named {data['model_id']!r} is installed; {model_id} was used")
            )
        params = SuperResolutionParams(
            image_url=given.url,
            scale=data["scale"],
            model_id=model_id,
            face_enhance=data["face_enhance"],
            not_applied=skipped,
        )
        return self.submission(data, params, {"image": given})


class FetchSerializer(serializers.Serializer):
    request_id = LenientNumberField(minimum=0, maximum=services.MAX_JOB_ID, integer=True, required=False, default=None)


SERIALIZERS = {
    "text2img": Text2ImgSerializer,
    "img2img": Img2ImgSerializer,
    "inpaint": InpaintSerializer,
    "super_resolution": SuperResolutionSerializer,
}
