"""Typed parameters per kind of job, and the table of job kinds: one place that says what each kind
accepts (its parameters), costs and answers (the shape of `output`).

Parameters are what the API's serializers produce, what `Job.params` stores (as a plain dict) and what
estimates, predictors and answers read. Request options that are not parameters (waiting, the
idempotency key) and results (seeds, NSFW flags) travel elsewhere. Kinds share fields through common
bases (DiffusionParams, FromImageParams), never by one kind inheriting another. docs/adding-a-kind.md
says what else a new kind needs.
"""

import math
from dataclasses import asdict, dataclass, field, fields
from typing import ClassVar

from django.conf import settings

from generation.schedulers import DEFAULT_SCHEDULER, SECOND_ORDER

UPSCALE_MODELS = [
    "RealESRGAN_x4plus",
    "RealESRNet_x4plus",
    "RealESRGAN_x4plus_anime_6B",
    "RealESRGAN_x2plus",
    "realesr-general-x4v3",
]
MAX_SIDE = 1024
IP_ADAPTER_WEIGHTS = "ip-adapter.safetensors"  # in a library IP-Adapter's folder, beside image_encoder/


def upscaler_for(factor: int) -> str:
    """The Real-ESRGAN network a generation's `upscale` uses: the x2 one for 2x, else the x4 one."""
    return "RealESRGAN_x2plus" if factor == 2 else "RealESRGAN_x4plus"


def deployment_model() -> str:
    """The name of the checkpoint this deployment serves (the last part of its path or id)."""
    return _name(settings.SDXL_MODEL, "sdxl")


def deployment_vae() -> str:
    return _name(settings.SDXL_VAE, "default")


def _name(path_or_id: str, default: str) -> str:
    return path_or_id.rstrip("/").rsplit("/", 1)[-1] if path_or_id else default


class InvalidInput(Exception):
    """A value that passed validation but cannot be used (an image too large to upscale, say): answered
    like a validation error for `field`."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field_name, self.message = field_name, message


def fit_size(width: int, height: int, limit: int = MAX_SIDE) -> tuple[int, int]:
    """An image's size scaled down to fit `limit` (keeping its aspect), in multiples of 8, at least 64."""
    scale = min(1.0, limit / max(width, height))
    return tuple(max(64, int(side * scale) // 8 * 8) for side in (width, height))


def fit_within(width: int | None, height: int | None, limit: int) -> tuple[int | None, int | None]:
    """A requested size clamped to `limit` by scaling both sides alike (1536x1024 in 1024 is 1024x680,
    not a squashed 1024x1024); a side not given stays unset."""
    if width and height:
        return fit_size(width, height, limit) if max(width, height) > limit else (width, height)
    clamp = limit - limit % 8
    return (width and min(width, clamp)), (height and min(height, clamp))


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
class JobParams:
    """What every kind has: how its result is delivered, and how many images it makes from which seed."""

    kind: ClassVar[str] = ""
    inputs: ClassVar[tuple[str, ...]] = ()  # fields that name a stored input image
    chooses_models: ClassVar[bool] = False  # checkpoint, LoRAs, embeddings and VAE from the library

    samples: int = 1
    seed: int = 0
    output_format: str = "png"
    base64: bool = False
    webhook: str | None = None
    track_id: str | int | float | bool | None = None
    # request fields that were understood but not applied here, each {"field": ..., "reason": ...}
    not_applied: list = field(default_factory=list)
    checkpoint: str = ""  # the library checkpoint a generation runs on (filled in when it is admitted)
    operation: str = ""  # the API operation that asked for it, when that is a preset of the kind (object_removal)
    demo_upscaler: bool = False  # its upscaling is a plain resize (UPSCALER_DEMO; said in meta)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "JobParams":
        """The parameters stored in `data` (keys this kind does not know, from older rows, are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    @property
    def seeds(self) -> list[int]:
        """Image i uses seed + i."""
        return [self.seed + i for i in range(self.samples)]

    def upscalers(self) -> list[tuple[str, str]]:
        """(an upscaler this job runs, the request field that asks for it), for each it runs."""
        return []

    def cost_factor(self) -> float:
        """Its price per image against its kind's plain one (more work, more credits)."""
        return 1.0

    def complete(self, sizes: dict[str, tuple[int, int]]):
        """Fill what depends on the input images, given each input's (width, height)."""

    def clamp_to_plan(self, max_side: int, max_samples: int):
        """A plan's limits, clamped like every other out-of-range value."""

    def denoising_steps(self) -> int:
        """The model steps the worker will run (progress and ETAs count these)."""
        return 0

    def batch_key(self) -> tuple | None:
        """What jobs that run in one pipeline call must share; None for a job that always runs alone."""
        return None

    def work(self) -> float:
        """Relative work per step, to scale a learned timing to another size."""
        return float(self.width * self.height * self.samples)

    def shape(self) -> str:
        """Jobs of one shape take about the same time (the key of learned timings)."""
        return f"{self.kind}:{self.width}x{self.height}:{self.samples}"


@dataclass(kw_only=True)
class DiffusionParams(JobParams):
    """What the SDXL kinds share: prompt, size, steps, guidance, scheduler and the library models."""

    chooses_models: ClassVar[bool] = True
    inputs: ClassVar[tuple[str, ...]] = ("ip_adapter_image",)

    prompt: str
    negative_prompt: str = ""
    width: int | None = 512
    height: int | None = 512
    steps: int = 30
    guidance_scale: float = 7.5
    scheduler: str = DEFAULT_SCHEDULER
    scheduler_options: dict = field(default_factory=dict)
    safety_checker: bool = False
    clip_skip: int | None = None  # text-encoder layers to skip (clamped to the model's depth on the worker)
    self_attention: bool = False  # perturbed-attention guidance
    upscale: int = 1  # the images are upscaled this many times in the same job
    loras: list = field(default_factory=list)  # [{"id": library id, "strength": float}, ...]
    embeddings: list = field(default_factory=list)  # library ids; each is also the token prompts use
    vae_id: str = ""  # a library VAE instead of the checkpoint's own
    ip_adapter_id: str = ""  # a library IP-Adapter: `ip_adapter_image` prompts at `ip_adapter_scale`
    ip_adapter_scale: float = 0.6
    ip_adapter_image: str = ""
    ip_adapter_image_url: str | None = None

    def upscalers(self):
        return [(upscaler_for(self.upscale), "upscale")] if self.upscale > 1 else []

    @property
    def output_size(self) -> tuple[int, int]:
        return self.width * self.upscale, self.height * self.upscale

    def shape(self) -> str:
        extras = (f":up{self.upscale}" if self.upscale > 1 else "") + (":pag" if self.self_attention else "")
        return super().shape() + extras

    def clamp_to_plan(self, max_side, max_samples):
        self.width, self.height = fit_within(self.width, self.height, max_side)
        self.samples = min(self.samples, max_samples)

    def denoising_steps(self) -> int:
        return self.steps_at(1.0)

    def steps_at(self, strength: float, steps: int | None = None) -> int:
        """The model steps of a run of `steps` (default: the job's) that repaints `strength` of its start
        (at least one scheduler step; second-order schedulers evaluate the model twice per step but the
        last)."""
        steps = max(1, int((steps or self.steps) * strength))
        return 2 * steps - 1 if self.scheduler in SECOND_ORDER else steps

    @property
    def controlnet_ids(self) -> list[str]:
        """The library ControlNets the job is steered by, in order (a ControlNet job's)."""
        return []

    def library_ids(self) -> set[str]:
        """The library models the job names besides its checkpoint."""
        named = {self.vae_id, self.ip_adapter_id, *self.embeddings, *self.controlnet_ids}
        return (named | {lora["id"] for lora in self.loras}) - {""}

    def shared_call_fields(self) -> tuple:
        """What jobs that share one pipeline call must have in common: everything but their prompts, seeds
        and image counts (and their negative prompts must be all given or all empty: an empty one is
        encoded differently)."""
        return (
            self.checkpoint,
            self.width,
            self.height,
            self.steps,
            self.guidance_scale,
            self.scheduler,
            tuple(sorted(self.scheduler_options.items())),
            self.clip_skip,
            self.self_attention,
            self.upscale,
            tuple((lora["id"], lora["strength"]) for lora in self.loras),
            tuple(self.embeddings),
            self.vae_id,
            self.safety_checker,
            bool(self.negative_prompt),
        )

    def batches(self) -> bool:
        """An image prompt (IP-Adapter) is one per call: such a job runs alone."""
        return not self.ip_adapter_id


def strength_steps(strength: float, steps: int) -> float:
    """A strength at which at least one denoising step runs (diffusers fails on zero)."""
    return min(1.0, max(strength, 1.000001 / steps))


@dataclass(kw_only=True)
class Text2ImgParams(DiffusionParams):
    """With `hires` (A1111's hires fix: {"upscaler", "width", "height", "steps", "strength"}), the images
    made at width x height are upscaled to the hires size (in latent space, by a resizer or by a library
    upscaler) and repainted there by img2img at `strength` for `steps` (0: the first pass's steps)."""

    kind: ClassVar[str] = "text2img"

    hires: dict = field(default_factory=dict)

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

    def hires_steps(self) -> int:
        """The second pass's model steps (0 without a hires fix)."""
        if not self.hires:
            return 0
        steps = self.hires["steps"] or self.steps
        return self.steps_at(strength_steps(self.hires["strength"], steps), steps)

    def denoising_steps(self) -> int:
        return self.steps_at(1.0) + self.hires_steps()

    def cost_factor(self) -> float:
        """A hires fix costs the work it adds: its pixels against the first pass's, times its steps."""
        if not self.hires:
            return 1.0
        pixels = self.hires["width"] * self.hires["height"] / (self.width * self.height)
        return 1.0 + pixels * self.hires_steps() / self.steps_at(1.0)

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


@dataclass(kw_only=True)
class FromImageParams(DiffusionParams):
    """The kinds that start from an init image, repainting `strength` of it. Width and height default to
    the init image's size (fit in 1024, multiples of 8)."""

    inputs: ClassVar[tuple[str, ...]] = ("init_image", "ip_adapter_image")

    width: int | None = None
    height: int | None = None
    strength: float = 0.7
    init_image: str = ""  # its storage name, once the job is admitted
    init_image_url: str | None = None  # the URL the client sent (echoed in meta), if it sent one

    def complete(self, sizes):
        default_width, default_height = fit_size(*sizes["init_image"])
        self.width = self.width or default_width
        self.height = self.height or default_height

    @property
    def effective_strength(self) -> float:
        return strength_steps(self.strength, self.steps)

    def denoising_steps(self) -> int:
        return self.steps_at(self.effective_strength)


@dataclass(kw_only=True)
class Img2ImgParams(FromImageParams):
    kind: ClassVar[str] = "img2img"


@dataclass(kw_only=True)
class InpaintParams(FromImageParams):
    """White in the mask is repainted, black is kept; a mask of another size is resized to the image."""

    kind: ClassVar[str] = "inpaint"
    inputs: ClassVar[tuple[str, ...]] = ("init_image", "mask_image", "ip_adapter_image")

    mask_image: str = ""
    mask_image_url: str | None = None


@dataclass(kw_only=True)
class OutpaintParams(DiffusionParams):
    """The image placed in the middle of a larger canvas (scaled down when it does not fit), the new area
    and `overlap_width` pixels into the image painted by SDXL inpainting; the image's other pixels are
    kept. The output has exactly the asked size."""

    kind: ClassVar[str] = "outpaint"
    inputs: ClassVar[tuple[str, ...]] = ("image",)

    width: int | None = 1280
    height: int | None = 720
    steps: int = 30
    guidance_scale: float = 8.0
    overlap_width: int = 32
    image: str = ""  # its storage name, once the job is admitted
    image_url: str | None = None

    @property
    def effective_strength(self) -> float:
        return 1.0  # the new area has nothing to start from


MIX_IMAGES = ("ip_adapter_image", "mix_image_2", "mix_image_3", "mix_image_4")  # img_mixer's images, in order


@dataclass(kw_only=True)
class ImgMixerParams(DiffusionParams):
    """Up to four images mixed through a library IP-Adapter (their image tokens side by side), steered by
    the prompt: text2img with several image prompts."""

    kind: ClassVar[str] = "img_mixer"
    inputs: ClassVar[tuple[str, ...]] = MIX_IMAGES

    ip_adapter_scale: float = 0.7
    mix_image_2: str = ""
    mix_image_3: str = ""
    mix_image_4: str = ""
    init_image_urls: list = field(default_factory=list)  # the URLs the client sent (None: sent inline)

    @property
    def mix_images(self) -> list[str]:
        return [getattr(self, name) for name in MIX_IMAGES if getattr(self, name)]


CONTROL_IMAGES = ("control_image", "control_image_2", "control_image_3")  # one per ControlNet at most
MAX_CONTROLNETS = len(CONTROL_IMAGES)
CANNY = "canny"  # the control type whose hint (auto_hint) this deployment makes itself
# types whose hint needs an annotator model (depth estimation, pose detection, ...) none of which is installed
ANNOTATED_TYPES = ("depth", "openpose", "lineart", "softedge", "mlsd", "normal", "scribble", "segmentation")
CONTROL_TYPES = (CANNY, *ANNOTATED_TYPES, "tile", "inpaint", "qrcode", "shuffle", "ip2p")  # the others: as given


@dataclass(kw_only=True)
class ControlNetParams(DiffusionParams):
    """SDXL steered by one or more library ControlNets (`controlnets`, each with its conditioning scale and
    control type). The control image of ControlNet i is `control_image` (i = 0), `control_image_2`, ...,
    the first one for every model when only one was given, and `init_image` when none was. With both an
    init image and a control image the init image is also the img2img start (at `strength`); with a
    mask it is ControlNet inpainting. Width and height default to the init (else control) image's size."""

    kind: ClassVar[str] = "controlnet"
    inputs: ClassVar[tuple[str, ...]] = ("init_image", "mask_image", *CONTROL_IMAGES, "ip_adapter_image")

    width: int | None = None
    height: int | None = None
    controlnets: list = field(default_factory=list)  # [{"id": library id, "scale": float, "type": str}, ...]
    auto_hint: bool = True  # a canny-type model gets the control image's canny edges
    guess_mode: bool = False
    strength: float = 0.55  # of the init image, when it is an img2img start
    init_image: str = ""
    init_image_url: str | None = None
    mask_image: str = ""
    mask_image_url: str | None = None
    control_image: str = ""
    control_image_2: str = ""
    control_image_3: str = ""
    control_image_urls: list = field(default_factory=list)  # the URLs the client sent (None: sent inline)

    @property
    def control_images(self) -> list[str]:
        """The stored control images, in order (none: the init image is the control image)."""
        return [getattr(self, name) for name in CONTROL_IMAGES if getattr(self, name)]

    @property
    def starts_from_image(self) -> bool:
        """The init image is an img2img (or inpainting) start, not only the control image."""
        return bool(self.init_image and (self.control_image or self.mask_image))

    @property
    def effective_strength(self) -> float:
        return strength_steps(self.strength, self.steps)

    def complete(self, sizes):
        default_width, default_height = fit_size(*sizes.get("init_image") or sizes["control_image"])
        self.width = self.width or default_width
        self.height = self.height or default_height

    @property
    def controlnet_ids(self) -> list[str]:
        return [model["id"] for model in self.controlnets]

    def denoising_steps(self) -> int:
        return self.steps_at(self.effective_strength if self.starts_from_image else 1.0)

    def batch_key(self) -> tuple | None:
        """Single-ControlNet jobs from a control image alone batch like text2img (one control image per
        prompt); diffusers takes one batch of conditionings for several ControlNets, and an init image
        starts each job apart."""
        if len(self.controlnets) != 1 or self.starts_from_image or not self.batches():
            return None
        model = self.controlnets[0]
        return (*self.shared_call_fields(), model["id"], model["scale"], model["type"], self.auto_hint, self.guess_mode)

    def shape(self) -> str:
        return super().shape() + f":cn{len(self.controlnets)}" + (":img" if self.starts_from_image else "")


@dataclass(kw_only=True)
class SuperResolutionParams(JobParams):
    """One image in, one image out, `scale` times larger."""

    kind: ClassVar[str] = "super_resolution"
    inputs: ClassVar[tuple[str, ...]] = ("image",)

    image: str = ""
    image_url: str | None = None
    width: int = 0  # the input's size
    height: int = 0
    scale: int = 4
    upscaler: str = UPSCALE_MODELS[0]  # the request's `model_id`
    face_enhance: bool = False

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


@dataclass(kw_only=True)
class RemoveBgParams(JobParams):
    """An image's background removed by a library segmentation model (an ONNX U2-Net or IS-Net): the
    image with a transparent background (PNG), or the mask (`only_mask`; white = the subject)."""

    kind: ClassVar[str] = "removebg_mask"
    inputs: ClassVar[tuple[str, ...]] = ("image",)

    image: str = ""
    image_url: str | None = None
    width: int = 0  # the input's size
    height: int = 0
    segmenter: str = ""  # the library model, chosen when the job is admitted
    only_mask: bool = False
    inverse_mask: bool = False
    post_process_mask: bool = False

    def complete(self, sizes):
        self.width, self.height = sizes["image"]

    def shape(self) -> str:
        return f"{self.kind}:{self.width}x{self.height}"


@dataclass(frozen=True)
class JobKind:
    """One kind of job: its parameters, its price and the shape of its answer. (Which predictor runs it
    is the worker's business: generation/runtime/registry.py.)"""

    params: type[JobParams]
    cost_setting: str  # the setting with its credits per output image
    single_output: bool = False  # `output` is one URL string, not a list (and the answer has no meta)

    @property
    def name(self) -> str:
        return self.params.kind


JOB_KINDS = {
    kind.name: kind
    for kind in (
        JobKind(Text2ImgParams, "CREDITS_PER_IMAGE"),
        JobKind(Img2ImgParams, "CREDITS_PER_IMAGE"),
        JobKind(InpaintParams, "CREDITS_PER_IMAGE"),
        JobKind(ControlNetParams, "CREDITS_PER_CONTROLNET_IMAGE"),
        JobKind(OutpaintParams, "CREDITS_PER_IMAGE"),
        JobKind(ImgMixerParams, "CREDITS_PER_IMAGE"),
        JobKind(RemoveBgParams, "CREDITS_PER_IMAGE"),
        JobKind(SuperResolutionParams, "CREDITS_PER_UPSCALE", single_output=True),
    )
}


def load(kind: str, data: dict) -> JobParams:
    """A job's stored parameters, typed."""
    return JOB_KINDS[kind].params.from_dict(data)


def cost(params: JobParams) -> int:
    """Credits a job with these parameters costs."""
    return math.ceil(getattr(settings, JOB_KINDS[params.kind].cost_setting) * params.samples * params.cost_factor())
