"""super_resolution: one image in, one image out, `scale` times larger, by a Real-ESRGAN upscaler."""

from dataclasses import dataclass
from typing import ClassVar

from django.conf import settings
from rest_framework import serializers

from generation.kinds.base import (
    ENTERPRISE_TXT2IMG,
    IMAGE_EDITING,
    UPSCALE_MODELS,
    V3,
    V5,
    InvalidInput,
    JobParams,
    Kind,
    Operation,
    flag,
)
from generation.kinds.fields import InputImageField, LenientBooleanField, LenientNumberField, LenientTextField
from generation.kinds.requests import NOT_APPLIED, JobSerializer, not_applied, reason


@dataclass(kw_only=True)
class SuperResolutionParams(JobParams):
    kind: ClassVar[str] = "super_resolution"
    inputs: ClassVar[tuple[str, ...]] = ("image",)

    image: str = ""
    image_url: str | None = None
    width: int = 0  # the input's size
    height: int = 0
    scale: int = 4
    upscaler: str = UPSCALE_MODELS[0]  # the request's `model_id`
    face_enhance: bool = False

    def request_fields(self) -> dict:
        return {
            **super().request_fields(),
            "url": self.image_url,
            "scale": self.scale,
            "model_id": self.upscaler,
            "face_enhance": flag(self.face_enhance),
        }

    def upscalers(self):
        return [(self.upscaler, "model_id")]

    def complete(self, sizes):
        self.width, self.height = sizes["image"]
        if self.width * self.height > settings.UPSCALE_MAX_INPUT_PIXELS:
            raise InvalidInput(
                "url",
                f"The url image is too large to upscale ({self.width}x{self.height}); "
                f"the limit is {settings.UPSCALE_MAX_INPUT_PIXELS} pixels.",
            )

    def work(self) -> float:
        return float(self.width * self.height * self.scale**2)

    def shape(self) -> str:
        return f"{self.kind}:{self.width}x{self.height}:{self.scale}"


class SuperResolutionSerializer(JobSerializer):
    url = InputImageField(
        required=False,
        default=None,
        help_text="The image to upscale: a URL, base64 or a data URL (init_image is an alias).",
    )
    init_image = InputImageField(required=False, default=None, help_text="An alias of url.")
    scale = LenientNumberField(minimum=2, maximum=4, integer=True, default=4, help_text="2-4 (default 4).")
    model_id = LenientTextField(
        max_length=100,
        required=False,
        default=None,
        help_text="The upscaler: RealESRGAN_x4plus (default), RealESRNet_x4plus, RealESRGAN_x4plus_anime_6B, RealESRGAN_x2plus or realesr-general-x4v3.",
    )
    face_enhance = LenientBooleanField(default=False, help_text=NOT_APPLIED)

    def validate(self, data):
        given = data["url"] or data["init_image"]
        if given is None:
            raise serializers.ValidationError({"url": ["The url field is required."]})
        model_id = data["model_id"] if data["model_id"] in UPSCALE_MODELS else UPSCALE_MODELS[0]
        skipped = not_applied({"face_enhance": data["face_enhance"]})
        if data["model_id"] not in (None, model_id):
            skipped.append(
                reason("model_id", f"no upscaler named {data['model_id']!r} is installed; {model_id} was used")
            )
        params = SuperResolutionParams(
            image_url=given.url,
            scale=data["scale"],
            upscaler=model_id,
            face_enhance=data["face_enhance"],
            not_applied=skipped,
        )
        return self.submission(data, params, {"image": given})


UPSCALE = Operation(
    name=SuperResolutionParams.kind,
    serializer=SuperResolutionSerializer,
    summary="Upscale an image 2-4x (output is one URL string)",
    routes=dict.fromkeys((V3, V5, ENTERPRISE_TXT2IMG, *IMAGE_EDITING), "super_resolution"),
    form=("image", "upscaler"),
    image_field="url",
)
KIND = Kind(
    params=SuperResolutionParams,
    cost_setting="CREDITS_PER_UPSCALE",
    predictor="upscale",
    operations=(UPSCALE,),
    single_output=True,
)
