"""Request serializers: lenient input in, normalised job parameters out."""

import secrets
from urllib.parse import urlsplit

from django.conf import settings
from rest_framework import serializers

from generation import images, safe_http, schedulers
from generation.api.fields import (
    InputImageField,
    LenientBooleanField,
    LenientNumberField,
    LenientTextField,
    ScalarField,
)

MAX_SEED = 2**32 - 1


class WebhookMixin:
    def validate_webhook(self, url):
        """Refuse a webhook we would never be allowed to call (same rules as input URLs)."""
        if url is None:
            return None
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            raise serializers.ValidationError("The webhook must be a valid URL.") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise serializers.ValidationError("The webhook must be a valid URL.")
        try:
            safe_http.vetted_address(parts.hostname, port or (443 if parts.scheme == "https" else 80))
        except (safe_http.UnsafeURL, ValueError) as exc:
            raise serializers.ValidationError("The webhook must be a public http(s) URL.") from exc
        return url.strip()
OUTPUT_FORMATS = {"png": "png", "jpg": "jpg", "jpeg": "jpg"}


def size_field(default=512):
    return LenientNumberField(minimum=64, maximum=1024, integer=True, multiple_of=8, default=default)


class GenerationSerializer(WebhookMixin, serializers.Serializer):
    """Fields shared by text2img, img2img and inpaint."""

    prompt = LenientTextField(max_length=20000)
    negative_prompt = LenientTextField(max_length=20000, required=False, default="")
    samples = LenientNumberField(minimum=1, maximum=4, integer=True, default=1)
    num_inference_steps = LenientNumberField(minimum=1, maximum=50, integer=True, default=30)
    guidance_scale = LenientNumberField(minimum=1, maximum=20, default=7.5)
    seed = LenientNumberField(maximum=MAX_SEED, integer=True, default=None)
    scheduler = LenientTextField(max_length=100, required=False, default=schedulers.DEFAULT_SCHEDULER)
    use_karras_sigmas = LenientBooleanField(default=None)
    algorithm_type = LenientTextField(max_length=50, required=False, default=None)
    output_format = LenientTextField(max_length=10, required=False, default="png")
    base64 = LenientBooleanField(default=False)
    safety_checker = LenientBooleanField(default=False)
    webhook = LenientTextField(max_length=2000, required=False, default=None)
    track_id = ScalarField(default=None)
    instant_response = LenientBooleanField(default=False)
    idempotency_key = LenientTextField(max_length=200, required=False, default="")

    def validate(self, data):
        resolved = schedulers.resolve(data["scheduler"], data["use_karras_sigmas"], data["algorithm_type"])
        if resolved is None:
            raise serializers.ValidationError({"scheduler": ["The selected scheduler is invalid."]})
        seed = data["seed"]
        return {
            "prompt": data["prompt"],
            "negative_prompt": data["negative_prompt"],
            "width": data.get("width"),
            "height": data.get("height"),
            "samples": data["samples"],
            "steps": data["num_inference_steps"],
            "guidance_scale": float(data["guidance_scale"]),
            "seed": seed if seed is not None and seed >= 0 else secrets.randbelow(MAX_SEED + 1),
            "scheduler": resolved[0],
            "scheduler_options": resolved[1],
            "output_format": OUTPUT_FORMATS.get(data["output_format"].strip().lower(), "png"),
            "base64": data["base64"],
            "safety_checker": data["safety_checker"],
            "webhook": data["webhook"],
            "track_id": data["track_id"],
            "instant_response": data["instant_response"],
            "idempotency_key": data["idempotency_key"],
        }


class Text2ImgSerializer(GenerationSerializer):
    width = size_field()
    height = size_field()


def _stored(image, source) -> tuple[str, str | None]:
    """Store an input image; keep the client's URL (not a base64 blob) to echo in meta."""
    name = images.store_input(image)
    return name, source if source.lower().startswith(("http://", "https://")) else None


class Img2ImgSerializer(GenerationSerializer):
    """Width/height default to the init image's size (fit in 1024, multiples of 8)."""

    init_image = InputImageField()
    width = size_field(default=None)
    height = size_field(default=None)
    strength = LenientNumberField(minimum=0, maximum=1, default=None)
    prompt_strength = LenientNumberField(minimum=0, maximum=1, default=None)

    def validate(self, data):
        params = super().validate(data)
        image, source = data["init_image"]
        default_width, default_height = images.fit_size(*image.size)
        params["width"] = data["width"] or default_width
        params["height"] = data["height"] or default_height
        strength = data["strength"] if data["strength"] is not None else data["prompt_strength"]
        params["strength"] = 0.7 if strength is None else float(strength)
        params["init_image"], params["init_image_url"] = _stored(image, source)
        return params


class InpaintSerializer(Img2ImgSerializer):
    """White in the mask is repainted, black is kept; a mask of another size is resized to the image."""

    mask_image = InputImageField()

    def validate(self, data):
        params = super().validate(data)
        params["mask_image"], params["mask_image_url"] = _stored(*data["mask_image"])
        return params


UPSCALE_MODELS = ["RealESRGAN_x4plus", "RealESRNet_x4plus", "RealESRGAN_x4plus_anime_6B", "RealESRGAN_x2plus",
                  "realesr-general-x4v3"]


class SuperResolutionSerializer(WebhookMixin, serializers.Serializer):
    url = InputImageField(required=False, default=None)
    init_image = InputImageField(required=False, default=None)
    scale = LenientNumberField(minimum=2, maximum=4, integer=True, default=4)
    model_id = LenientTextField(max_length=100, required=False, default=None)
    face_enhance = LenientBooleanField(default=False)
    webhook = LenientTextField(max_length=2000, required=False, default=None)
    track_id = ScalarField(default=None)
    instant_response = LenientBooleanField(default=False)
    idempotency_key = LenientTextField(max_length=200, required=False, default="")

    def validate(self, data):
        given = data["url"] or data["init_image"]
        if given is None:
            raise serializers.ValidationError({"url": ["The url field is required."]})
        width, height = given[0].size
        if width * height > settings.UPSCALE_MAX_INPUT_PIXELS:
            raise serializers.ValidationError(
                {"url": [f"The url image is too large to upscale ({width}x{height}); "
                         f"the limit is {settings.UPSCALE_MAX_INPUT_PIXELS} pixels."]}
            )
        model_id = data["model_id"] if data["model_id"] in UPSCALE_MODELS else UPSCALE_MODELS[0]
        image_name, image_url = _stored(*given)
        return {
            "image": image_name,
            "image_url": image_url,
            "width": width,
            "height": height,
            "scale": data["scale"],
            "model_id": model_id,
            "face_enhance": data["face_enhance"],
            "webhook": data["webhook"],
            "track_id": data["track_id"],
            "instant_response": data["instant_response"],
            "idempotency_key": data["idempotency_key"],
            "output_format": "png",
            "samples": 1,
            "seed": 0,
        }


class FetchSerializer(serializers.Serializer):
    request_id = LenientNumberField(integer=True, required=False, default=None)


SERIALIZERS = {
    "text2img": Text2ImgSerializer,
    "img2img": Img2ImgSerializer,
    "inpaint": InpaintSerializer,
    "super_resolution": SuperResolutionSerializer,
}
