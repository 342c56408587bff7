"""img2img: an init image repainted at `strength`, steered by a prompt."""

from dataclasses import dataclass
from typing import ClassVar

from generation.kinds.base import IMAGES, V3, V3_DREAMBOOTH, V4_DREAMBOOTH, V7_IMAGES, FromImageParams, Kind, Operation
from generation.kinds.requests import FromImageSerializer


@dataclass(kw_only=True)
class Img2ImgParams(FromImageParams):
    kind: ClassVar[str] = "img2img"


class Img2ImgSerializer(FromImageSerializer):
    """Width/height default to the init image's size (fit in 1024, multiples of 8)."""

    params_class = Img2ImgParams


FROM_IMAGE = Operation(
    name=Img2ImgParams.kind,
    serializer=Img2ImgSerializer,
    summary="Generate images from a prompt and an init image",
    routes={
        V3: "img2img",
        V3_DREAMBOOTH: "img2img",
        V4_DREAMBOOTH: "img2img",
        **dict.fromkeys(IMAGES, "img2img"),
        V7_IMAGES: "image-to-image",
    },
    form=("prompt", "image", "size", "seed", "strength", "sampling", "models"),
)
KIND = Kind(params=Img2ImgParams, cost_setting="CREDITS_PER_IMAGE", predictor="sdxl", operations=(FROM_IMAGE,))
