"""text2img: images from a prompt, optionally with A1111's hires fix (a second, img2img pass at a larger
size)."""

from dataclasses import dataclass, field
from typing import ClassVar

from generation.kinds.base import (
    IMAGES,
    UPSCALE_MODELS,
    V3,
    V3_DREAMBOOTH,
    V4_DREAMBOOTH,
    V7_IMAGES,
    DiffusionParams,
    Kind,
    Operation,
    fit_size,
    fit_within,
    strength_steps,
)
from generation.kinds.fields import LenientBooleanField, LenientNumberField, LenientTextField
from generation.kinds.requests import MAX_REQUESTED_SIDE, GenerationSerializer, reason, size_field

# hires fix (A1111's): the first pass's latents resized in latent space by one of these modes
# (torch's interpolation mode, antialiased), or its images by a resizer or a library upscaler
LATENT_UPSCALE_MODES = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}
IMAGE_RESIZERS = {"None": "lanczos", "Lanczos": "lanczos", "Nearest": "nearest"}  # A1111's None: a plain resize
# A1111's names of the Real-ESRGAN networks this deployment has
UPSCALER_ALIASES = {
    "R-ESRGAN 4x+": "RealESRGAN_x4plus",
    "R-ESRGAN 4x+ Anime6B": "RealESRGAN_x4plus_anime_6B",
    "R-ESRGAN General 4xV3": "realesr-general-x4v3",
    "R-ESRGAN 2x+": "RealESRGAN_x2plus",
}
DEFAULT_HIRES_UPSCALER = "Latent"


@dataclass(kw_only=True)
class Text2ImgParams(DiffusionParams):
    """With `hires` (A1111's hires fix: {"upscaler", "width", "height", "steps", "strength"}), the images
    made at width x height are upscaled to the hires size (in latent space, by a resizer or by a library
    upscaler) and repainted there by img2img at `strength` for `steps` (0: the first pass's steps)."""

    kind: ClassVar[str] = "text2img"

    hires: dict = field(default_factory=dict)

    def request_fields(self) -> dict:
        fields = super().request_fields()
        if self.hires:  # its size as hr_resize_x/y: exact whatever the first pass's
            fields.update(
                enable_hr="yes",
                hr_upscaler=self.hires["upscaler"],
                hr_resize_x=self.hires["width"],
                hr_resize_y=self.hires["height"],
                hr_second_pass_steps=self.hires["steps"],
                denoising_strength=self.hires["strength"],
            )
        return fields

    def batch_key(self) -> tuple | None:
        return (*self.shared_call_fields(), tuple(sorted(self.hires.items()))) if self.batches() else None

    @property
    def output_size(self) -> tuple[int, int]:
        if not self.hires:
            return super().output_size
        return self.hires["width"] * self.upscale, self.hires["height"] * self.upscale

    def upscalers(self) -> list[tuple[str, str]]:
        model = self.hires.get("upscaler")
        hires = [(model, "hr_upscaler")] if model in UPSCALE_MODELS else []
        return hires + super().upscalers()

    def second_pass(self) -> dict:
        return self.hires

    def second_pass_steps(self) -> int:
        if not self.hires:
            return 0
        steps = self.hires["steps"] or self.steps
        return self.steps_at(strength_steps(self.hires["strength"], steps), steps)

    def denoising_steps(self) -> int:
        return self.steps_at(1.0) + self.second_pass_steps()

    def cost_factor(self) -> float:
        """A hires fix costs the work it adds: its pixels against the first pass's, times its steps."""
        if not self.hires:
            return 1.0
        pixels = self.hires["width"] * self.hires["height"] / (self.width * self.height)
        return 1.0 + pixels * self.second_pass_steps() / self.steps_at(1.0)

    def work(self) -> float:
        return super().work() * self.cost_factor()

    def shape(self) -> str:
        hires = f":hr{self.hires['width']}x{self.hires['height']}" if self.hires else ""
        return super().shape() + hires

    def clamp_to_plan(self, max_side, max_samples):
        super().clamp_to_plan(max_side, max_samples)
        if self.hires:
            width, height = fit_within(self.hires["width"], self.hires["height"], max_side)
            self.hires.update(width=width, height=height)


class Text2ImgSerializer(GenerationSerializer):
    """With `enable_hr`, A1111's hires fix (beyond v3): made at width x height, upscaled `hr_scale` times
    (or to `hr_resize_x` x `hr_resize_y`) by `hr_upscaler`, then repainted at `denoising_strength`."""

    params_class = Text2ImgParams

    width = size_field(help_text="64-1024, a multiple of 8.")
    height = size_field(help_text="64-1024, a multiple of 8.")
    enable_hr = LenientBooleanField(default=False, help_text='"yes": the hires fix (a second, img2img pass).')
    hr_scale = LenientNumberField(minimum=1, maximum=4, default=2.0, help_text="Hires upscale factor, 1-4.")
    hr_resize_x = LenientNumberField(
        minimum=0, maximum=MAX_REQUESTED_SIDE, integer=True, default=0, help_text="Hires width (0: by hr_scale)."
    )
    hr_resize_y = LenientNumberField(
        minimum=0, maximum=MAX_REQUESTED_SIDE, integer=True, default=0, help_text="Hires height (0: by hr_scale)."
    )
    hr_upscaler = LenientTextField(
        max_length=100,
        required=False,
        default=None,
        help_text='"Latent" (default) and its variants, "None", "Lanczos", "Nearest" or a library upscaler.',
    )
    hr_second_pass_steps = LenientNumberField(
        minimum=0, maximum=50, integer=True, default=0, help_text="Hires steps (0: as the first pass)."
    )
    denoising_strength = LenientNumberField(
        minimum=0, maximum=1, default=0.7, help_text="How much of the upscaled image the hires pass repaints."
    )

    def kind_fields(self, data, params):
        if data["enable_hr"]:
            params.hires = hires_fix(data, params)
        return {}


def hires_fix(data: dict, params: Text2ImgParams) -> dict:
    """The hires fix's parameters: its size (`hr_resize_x`/`_y`, else the size times `hr_scale`; one of
    the two alone keeps the first pass's shape), fitted in MAX_SIDE, and its upscaler (an unknown one is
    named in not_applied and "Latent" used)."""
    width, height = params.width, params.height
    resize_x, resize_y = data["hr_resize_x"], data["hr_resize_y"]
    if resize_x or resize_y:
        target = (resize_x or round(resize_y * width / height), resize_y or round(resize_x * height / width))
    else:
        target = (round(width * data["hr_scale"]), round(height * data["hr_scale"]))
    target = fit_size(*target)
    asked = (data["hr_upscaler"] or DEFAULT_HIRES_UPSCALER).strip()
    upscaler = UPSCALER_ALIASES.get(asked, asked)
    if upscaler not in (*LATENT_UPSCALE_MODES, *IMAGE_RESIZERS, *UPSCALE_MODELS):
        params.not_applied.append(
            reason("hr_upscaler", f"no upscaler named {asked!r} is installed; {DEFAULT_HIRES_UPSCALER} was used")
        )
        upscaler = DEFAULT_HIRES_UPSCALER
    return {
        "upscaler": upscaler,
        "width": target[0],
        "height": target[1],
        "steps": data["hr_second_pass_steps"],
        "strength": float(data["denoising_strength"]),
    }


GENERATE = Operation(
    name=Text2ImgParams.kind,
    serializer=Text2ImgSerializer,
    summary="Generate images from a prompt",
    routes={
        V3: "text2img",
        V3_DREAMBOOTH: "",
        V4_DREAMBOOTH: "",
        **dict.fromkeys(IMAGES, "text2img"),
        V7_IMAGES: "text-to-image",
    },
    form=("prompt", "size", "seed", "sampling", "models"),
)
KIND = Kind(params=Text2ImgParams, cost_setting="CREDITS_PER_IMAGE", predictor="sdxl", operations=(GENERATE,))
