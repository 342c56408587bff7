"""Request serializers: lenient input in, normalised job parameters out."""

import secrets

from rest_framework import serializers

from generation import schedulers
from generation.api.fields import LenientBooleanField, LenientNumberField, LenientTextField, ScalarField

MAX_SEED = 2**32 - 1
OUTPUT_FORMATS = {"png": "png", "jpg": "jpg", "jpeg": "jpg"}


def size_field(default=512):
    return LenientNumberField(minimum=64, maximum=1024, integer=True, multiple_of=8, default=default)


class GenerationSerializer(serializers.Serializer):
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
        }


class Text2ImgSerializer(GenerationSerializer):
    width = size_field()
    height = size_field()


class FetchSerializer(serializers.Serializer):
    request_id = LenientNumberField(integer=True, required=False, default=None)
