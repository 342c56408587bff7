"""outpaint (image editing): an image extended to a larger canvas. The image is centred on the new size
(scaled down when it is larger); the new area and a band of `overlap_width` pixels into the image on
each side that gained area are painted by SDXL inpainting, the mask fading from white at the image's
edge to black, so every pixel further in is the image's own (the predictor composites them back)."""

from dataclasses import dataclass
from typing import ClassVar

from PIL import Image, ImageChops, ImageFilter

from generation.kinds.base import IMAGE_EDITING, DiffusionParams, Kind, Operation
from generation.kinds.fields import InputImageField, LenientNumberField
from generation.kinds.requests import GenerationSerializer, size_field

MAX_SIDE = 1440


@dataclass(kw_only=True)
class OutpaintParams(DiffusionParams):
    """The image placed in the middle of a larger canvas (scaled down when it does not fit), the new area
    and `overlap_width` pixels into the image painted by SDXL inpainting; the image's other pixels are
    kept. The output has exactly the asked size."""

    kind: ClassVar[str] = "outpaint"
    inputs: ClassVar[tuple[str, ...]] = ("image", "ip_adapter_image")
    pipeline: ClassVar[str] = "inpainting"

    width: int | None = 1280
    height: int | None = 720
    steps: int = 30
    guidance_scale: float = 8.0
    overlap_width: int = 32
    image: str = ""  # its storage name, once the job is admitted
    image_url: str | None = None

    def request_fields(self) -> dict:
        return {**super().request_fields(), "image": self.image_url, "overlap_width": self.overlap_width}

    def meta_inputs(self, input_url, hint_urls):
        return {**super().meta_inputs(input_url, hint_urls), "image": input_url(self.image_url, self.image)}

    @property
    def effective_strength(self) -> float:
        return 1.0  # the new area has nothing to start from

    def call_inputs(self, images, batch, hints):
        image, mask = canvas(images["image"], self.size, self.overlap_width)
        size = {"width": self.width, "height": self.height}
        return {"image": image, "mask_image": mask, "strength": 1.0, **size, **self.image_prompt(images)}


def canvas(image: Image.Image, size: tuple[int, int], overlap: int) -> tuple[Image.Image, Image.Image]:
    """(the canvas, its mask: white = paint) for `image` outpainted to `size`."""
    width, height = size
    scale = min(1.0, width / image.width, height / image.height)
    placed = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS)
    left, top = (width - placed.width) // 2, (height - placed.height) // 2
    # the new area starts from the image's edges smeared outwards, not a flat colour: inpainting then
    # continues the picture rather than framing it
    background = placed.resize((width, height), Image.BILINEAR).filter(
        ImageFilter.GaussianBlur(max(width, height) / 16)
    )
    result = background.copy()
    result.paste(placed, (left, top))
    band = Image.new("L", placed.size, 0)
    gained = {
        "left": left > 0,
        "top": top > 0,
        "right": left + placed.width < width,
        "bottom": top + placed.height < height,
    }
    for side in (side for side, grew in gained.items() if grew and overlap > 0):
        band = ImageChops.lighter(band, _ramp(placed.size, side, overlap))
    mask = Image.new("L", size, 255)
    mask.paste(band, (left, top))
    return result, mask


def _ramp(size: tuple[int, int], side: str, overlap: int) -> Image.Image:
    """White at the `side` edge fading to black `overlap` pixels in (1 - distance / overlap)."""
    width, height = size
    length = width if side in ("left", "right") else height
    values = bytes(round(min(1.0, max(0.0, 1.0 - distance / overlap)) * 255) for distance in range(length))
    if side in ("right", "bottom"):
        values = values[::-1]
    if side in ("left", "right"):
        return Image.frombytes("L", (width, 1), values).resize(size, Image.NEAREST)
    return Image.frombytes("L", (1, height), values).resize(size, Image.NEAREST)


class OutpaintSerializer(GenerationSerializer):
    """The image centred on a canvas of `width` x `height`; the new area and `overlap_width` pixels into
    the image are painted."""

    params_class = OutpaintParams
    max_side = MAX_SIDE
    image = InputImageField(help_text="The image to extend: a URL, base64 or a data URL.")
    width = size_field(default=1280, help_text="64-1440, a multiple of 8.")
    height = size_field(default=720, help_text="64-1440, a multiple of 8.")
    overlap_width = LenientNumberField(
        minimum=0, maximum=42, integer=True, default=32, help_text="Pixels of the image repainted at each seam, 0-42."
    )
    num_inference_steps = LenientNumberField(minimum=1, maximum=30, integer=True, default=30, help_text="1-30.")
    guidance_scale = LenientNumberField(minimum=1, maximum=20, default=8, help_text="1-20 (default 8).")

    def kind_fields(self, data, params):
        params.steps = min(params.steps, 30)
        params.overlap_width = data["overlap_width"]
        params.image_url = data["image"].url
        return {"image": data["image"]}


EXTEND = Operation(
    name=OutpaintParams.kind,
    serializer=OutpaintSerializer,
    summary="Extend an image to a larger canvas",
    routes=dict.fromkeys(IMAGE_EDITING, "outpaint"),
    form=("prompt", "image", "overlap", "size", "seed", "sampling", "models"),
    image_field="image",
)
KIND = Kind(params=OutpaintParams, cost_setting="CREDITS_PER_IMAGE", predictor="sdxl", operations=(EXTEND,))
