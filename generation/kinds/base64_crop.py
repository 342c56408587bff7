"""base64_crop (the training API's helper): a photo made square and sized for training, as its URL. No
face detector is installed, so the square is the photo's centre, and the answer says so (`crop`:
"centre"; `meta.not_applied` names face detection)."""

from dataclasses import dataclass
from typing import ClassVar

from django.conf import settings

from generation.kinds.base import V3, JobParams, Kind, Operation
from generation.kinds.fields import InputImageField, LenientBooleanField
from generation.kinds.requests import JobSerializer, reason

CENTRE = "centre"
FACE_DETECTION = "no face detector is installed here: the square is the photo's centre"


@dataclass(kw_only=True)
class CropParams(JobParams):
    kind: ClassVar[str] = "base64_crop"
    inputs: ClassVar[tuple[str, ...]] = ("image",)

    image: str = ""
    image_url: str | None = None
    crop: bool = True  # false: the whole photo, resized (squashed) to the square
    side: int = 1024
    width: int = 0  # the input's size
    height: int = 0

    def request_fields(self) -> dict:
        return {**super().request_fields(), "image": self.image_url, "crop": "true" if self.crop else "false"}

    def complete(self, sizes):
        self.width, self.height = sizes["image"]

    def work(self) -> float:
        return float(self.width * self.height)

    def shape(self) -> str:
        return f"{self.kind}:{self.side}"


class CropSerializer(JobSerializer):
    """A photo made square at the training size (TRAINING_RESOLUTION), for a training's `images`."""

    image = InputImageField(help_text="The photo: base64, a data URL or a URL.")
    crop = LenientBooleanField(default=True, help_text='"true" (default): the centre square; "false": resized whole.')

    def validate(self, data):
        params = CropParams(
            crop=data["crop"],
            side=settings.TRAINING_RESOLUTION,
            image_url=data["image"].url,
            not_applied=[reason("face_detection", FACE_DETECTION)] if data["crop"] else [],
        )
        return self.submission(data, params, {"image": data["image"]})


CROP = Operation(
    name=CropParams.kind,
    serializer=CropSerializer,
    summary="Make a photo square at the training size (its centre)",
    routes={V3: "base64_crop"},
    image_field="image",
)
KIND = Kind(
    params=CropParams, cost_setting="CREDITS_PER_CROP", predictor="crop", operations=(CROP,), single_output=True
)
