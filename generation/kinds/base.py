"""What every kind of job is made of: its parameters (the bases kinds share fields through), the API
operations that ask for it, and the constants and helpers more than one kind uses.

Parameters are what a kind's serializer produces, what `Job.params` stores (as a plain dict) and what
estimates, predictors and answers read. Request options that are not parameters (waiting, the
idempotency key) and results (seeds, NSFW flags) travel elsewhere. Kinds share fields through the bases
here (JobParams, DiffusionParams, FromImageParams), never by one kind inheriting another. Whatever differs
by kind is a method of its parameters, so the rest of the code never asks which kind it holds.
"""

import math
from dataclasses import asdict, dataclass, field, fields
from typing import ClassVar

from django.conf import settings
from django.db import models
from PIL import Image

from generation.kinds.sampling import ETA, GUIDANCE, SCHEDULER, STEPS, Sampling
from generation.kinds.schedulers import DEFAULT_SCHEDULER, SECOND_ORDER

UPSCALE_MODELS = [
    "RealESRGAN_x4plus",
    "RealESRNet_x4plus",
    "RealESRGAN_x4plus_anime_6B",
    "RealESRGAN_x2plus",
    "realesr-general-x4v3",
]
MAX_SIDE = 1024
IP_ADAPTER_WEIGHTS = "ip-adapter.safetensors"  # in a library IP-Adapter's folder, beside image_encoder/


class ModelType(models.TextChoices):
    """The types of library model (LibraryModel.model_type): a kind names the models it runs by type."""

    CHECKPOINT = "checkpoint"
    LORA = "lora"
    EMBEDDING = "embedding"
    VAE = "vae"
    CONTROLNET = "controlnet"
    IP_ADAPTER = "ip_adapter"
    SEGMENTATION = "segmentation"


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


def flag(value: bool) -> str:
    """A boolean as the hosted API's request fields write it."""
    return "yes" if value else "no"


def strength_steps(strength: float, steps: int) -> float:
    """A strength at which at least one denoising step runs (diffusers fails on zero)."""
    return min(1.0, max(strength, 1.000001 / steps))


@dataclass(frozen=True)
class OperationModel:
    """A library model an operation runs without the request naming it (img_mixer's IP-Adapter,
    removebg_mask's segmentation model): the configured one (`setting`), else the first of `model_type`
    the plan may use; without one, `missing` is the error, named under `field`."""

    model_type: ModelType
    setting: str
    parameter: str  # the parameter it is written to
    field: str
    missing: str


@dataclass(kw_only=True)
class JobParams:
    """What every kind has: how its result is delivered, and how many images it makes from which seed."""

    kind: ClassVar[str] = ""
    inputs: ClassVar[tuple[str, ...]] = ()  # fields that name a stored input image
    chooses_models: ClassVar[bool] = False  # checkpoint, LoRAs, embeddings and VAE from the library
    generates: ClassVar[bool] = False  # a generation from a prompt: the hosted API's generation meta applies
    operation_model: ClassVar[OperationModel | None] = None
    queue: ClassVar[str | None] = None  # the RQ queue its jobs go to whatever the plan (None: the plan's)
    stages: ClassVar[tuple[str, ...]] = ()  # phases that are kept on the job and sent to its webhook
    makes_model: ClassVar[bool] = False  # it succeeds with a model for its owner's library (`model_id`)
    resumable: ClassVar[bool] = False  # it saves its state as it runs: a later try goes on from there

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
    # what the worker does to an input image once decoded, by field (a front-end's mask options)
    input_treatments: dict = field(default_factory=dict)

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

    # what a request asks -------------------------------------------------------------------------

    def to_request(self) -> dict:
        """The request fields that ask for these parameters again (input images as the URLs the client
        sent, left out where it sent the image inline; fields without a value left out): answers' meta
        and the playground's "run again" write them, tests/test_request_fields.py reads them back."""
        return {name: value for name, value in self.request_fields().items() if value is not None}

    def request_fields(self) -> dict:
        """to_request's fields, None where there is no value (each kind adds its own)."""
        return {"samples": self.samples, "seed": self.seed, "base64": flag(self.base64)}

    def input_names(self) -> dict[str, str]:
        """The job's stored input images by the request field each came in (the worker decodes them)."""
        return {name: getattr(self, name) for name in self.inputs if getattr(self, name)}

    def take_input(self, name: str, stored: str):
        """Note where the input image of request field `name` was stored."""
        setattr(self, name, stored)

    def prepare_input(self, name: str, image: Image.Image) -> Image.Image:
        """An input image as the job keeps it once decoded on the worker (a kind that needs it smaller
        makes it so at once, before the next is decoded)."""
        return image

    def meta_inputs(self, input_url, hint_urls: list[str] | None) -> dict:
        """The answer's meta about the job's input images: `input_url(url sent, stored name)` gives an
        input's URL; `hint_urls`, once the job succeeded, the control images a ControlNet saw."""
        return {}

    # the library models and upscalers it runs ----------------------------------------------------

    def models_named(self) -> dict[str, list[str]]:
        """The library models the job names besides its checkpoint, by model type (LibraryModel's types)."""
        return {}

    def lora_weights(self) -> list[tuple[str, float]]:
        """(LoRA id, strength) for each LoRA it applies."""
        return []

    def library_ids(self) -> set[str]:
        """Every library id the job names besides its checkpoint."""
        return {model for ids in self.models_named().values() for model in ids} - {""}

    def upscalers(self) -> list[tuple[str, str]]:
        """(an upscaler this job runs, the request field that asks for it), for each it runs."""
        return []

    def upscale_after(self) -> int:
        """How many times its images are upscaled once made (1: not at all)."""
        return 1

    # price, limits, timing and batching ------------------------------------------------------------

    def cost_factor(self) -> float:
        """Its price per image against its kind's plain one (more work, more credits)."""
        return 1.0

    def complete(self, sizes: dict[str, tuple[int, int]]):
        """Fill what depends on the input images, given each input's (width, height)."""

    def clamp_to_plan(self, max_side: int, max_samples: int):
        """A plan's limits, clamped like every other out-of-range value."""

    def fit_to_model(self, side: int):
        """The image side its checkpoint was made for (a model it makes is trained at no larger)."""

    def check_plan(self, plan):
        """The plan's limits beyond size and image count, once the input images are known: clamped, or
        refused with InvalidInput."""

    def input_pixel_budget(self) -> int:
        """The pixels all its input images may have together (the worker decodes them at once)."""
        return settings.INPUT_REQUEST_MAX_PIXELS

    def max_in_flight(self, plan) -> int | None:
        """How many jobs of this kind an account may have queued or running at once (None: no limit
        beyond the plan's queue)."""
        return None

    def timeout(self) -> int:
        """Seconds a try may run before it is stopped, failed and refunded."""
        return settings.GENERATION_JOB_TIMEOUT

    def model_id(self) -> str:
        """The library id of the model a job of a kind that `makes_model` makes."""
        return ""

    def model_name(self) -> str:
        """That model's name in the library."""
        return ""

    def denoising_steps(self) -> int:
        """The model steps the worker will run (progress and ETAs count these)."""
        return 0

    def runs_fast_model(self) -> bool:
        """Whether it asks for the deployment's fast model (REALTIME_MODEL: the realtime endpoints)."""
        return False

    def apply_sampling(self, sampling: Sampling, model: str):
        """Take `model`'s own sampling (a few-step model's), as far as the request left it open."""

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
    """What the SDXL kinds share: prompt, size, steps, guidance, scheduler and the library models. They
    run on the SDXL predictor, which asks them which of its pipelines they take (`pipeline`), what goes
    into the call (`call_inputs`), which control images they have (`control_sources`) and whether a
    second pass follows (`second_pass`)."""

    chooses_models: ClassVar[bool] = True
    generates: ClassVar[bool] = True
    inputs: ClassVar[tuple[str, ...]] = ("ip_adapter_image",)

    prompt: str
    negative_prompt: str = ""
    width: int | None = 512
    height: int | None = 512
    steps: int = 30
    guidance_scale: float = 7.5
    scheduler: str = DEFAULT_SCHEDULER
    scheduler_options: dict = field(default_factory=dict)
    eta: float | None = None  # TCD's gamma, DDIM's eta (None: the scheduler's own)
    quality: str = ""  # OpenAI's quality, for steps: OPENAI_QUALITY_STEPS, or a fast model's scaled
    # the sampling fields the request set itself (sampling.STEPS, ...): how the job came about, not what it is
    asked: list = field(default_factory=list, compare=False)
    sampling_from: str = ""  # the library model whose own sampling the job took, if any
    realtime: bool = False  # asked on a realtime endpoint: the deployment's fast model
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

    # which of the SDXL predictor's pipelines runs it: "text_to_image", "image_to_image" or "inpainting"
    pipeline: ClassVar[str] = "text_to_image"

    def request_fields(self) -> dict:
        fields = dict(
            super().request_fields(),
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            width=self.width,
            height=self.height,
            num_inference_steps=self.steps,
            guidance_scale=self.guidance_scale,
            scheduler=self.scheduler,
            **scheduler_option_fields(self.scheduler_options),
            eta=self.eta,
            safety_checker=flag(self.safety_checker),
            clip_skip=self.clip_skip,
            self_attention=flag(self.self_attention),
            upscale=self.upscale if self.upscale > 1 else "no",  # "1" would read as "yes" (2x)
            output_format=self.output_format,
            model_id=self.checkpoint,
            lora_model=",".join(lora["id"] for lora in self.loras),
            lora_strength=",".join(str(lora["strength"]) for lora in self.loras),
            embeddings_model=",".join(self.embeddings),
            vae=self.vae_id,
        )
        if self.ip_adapter_id:
            fields.update(
                ip_adapter_id=self.ip_adapter_id,
                ip_adapter_scale=self.ip_adapter_scale,
                ip_adapter_image=self.ip_adapter_image_url,
            )
        return fields

    def runs_fast_model(self) -> bool:
        return self.realtime

    def apply_sampling(self, sampling: Sampling, model: str):
        """The sampling `model` runs with (a few-step model's), where the request did not ask otherwise;
        what it asked outside the model's ranges clamped, and said so."""
        if not sampling:
            return
        self.sampling_from = model
        if STEPS not in self.asked and sampling.steps:
            self.steps = self._steps_for_quality(sampling)
        elif sampling.max_steps and self.steps > sampling.max_steps:
            self._clamped("num_inference_steps", f"{model} runs at most {sampling.max_steps} steps; it ran that many.")
            self.steps = sampling.max_steps
        low, high = sampling.guidance_range()
        if GUIDANCE not in self.asked and sampling.guidance is not None:
            self.guidance_scale = sampling.guidance
        elif not low <= self.guidance_scale <= high:
            self.guidance_scale = min(max(self.guidance_scale, low), high)
            self._clamped(
                "guidance_scale", f"{model} takes guidance {low:g}-{high:g}; it ran at {self.guidance_scale:g}."
            )
        spacing = {"timestep_spacing": sampling.timestep_spacing} if sampling.timestep_spacing else {}
        if SCHEDULER not in self.asked and sampling.scheduler:
            self.scheduler, self.scheduler_options = sampling.scheduler, spacing
        elif self.scheduler == sampling.scheduler:  # its scheduler asked by name (A1111's Euler): its spacing
            self.scheduler_options = {**spacing, **self.scheduler_options}
        if ETA not in self.asked and sampling.eta is not None:
            self.eta = sampling.eta

    def _steps_for_quality(self, sampling: Sampling) -> int:
        """A fast model's steps for OpenAI's `quality`: its own default scaled as the quality scales the
        default model's ("high": 40 of 25 steps there, 6 of 4 here)."""
        if not self.quality:
            return sampling.steps
        standard = settings.OPENAI_QUALITY_STEPS.get("standard") or 25
        scaled = round(sampling.steps * settings.OPENAI_QUALITY_STEPS[self.quality] / standard)
        return max(1, min(scaled, sampling.max_steps or scaled))

    def _clamped(self, field_name: str, why: str):
        self.not_applied = [*self.not_applied, {"field": field_name, "reason": why}]

    def meta_inputs(self, input_url, hint_urls):
        if not self.ip_adapter_image:
            return {}
        return {"ip_adapter_image": input_url(self.ip_adapter_image_url, self.ip_adapter_image)}

    def models_named(self):
        return {
            ModelType.LORA: [lora["id"] for lora in self.loras],
            ModelType.EMBEDDING: list(self.embeddings),
            ModelType.VAE: [self.vae_id] if self.vae_id else [],
            ModelType.CONTROLNET: self.controlnet_ids,
            ModelType.IP_ADAPTER: [self.ip_adapter_id] if self.ip_adapter_id else [],
        }

    def lora_weights(self):
        return [(lora["id"], lora["strength"]) for lora in self.loras]

    def upscalers(self):
        return [(upscaler_for(self.upscale), "upscale")] if self.upscale > 1 else []

    def upscale_after(self) -> int:
        return self.upscale

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
            self.eta,
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

    # on the worker (PIL only: the predictor brings the tensors) -------------------------------------

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def image_prompt(self, images: dict) -> dict:
        """The IP-Adapter's image prompt of the call (a job with one runs alone)."""
        return {"ip_adapter_image": images["ip_adapter_image"]} if self.ip_adapter_id else {}

    def call_inputs(self, images: dict, batch: list, hints: list) -> dict:
        """The pipeline call's inputs besides prompts and sampling: its size and image inputs, from the
        first job's decoded `images`; `batch` holds the parameters of every job in the call and `hints`
        each one's control images (a ControlNet job's)."""
        return {"width": self.width, "height": self.height, **self.image_prompt(images)}

    def control_sources(self, images: dict) -> list[tuple[Image.Image, str]]:
        """(control image at the output size, the hint to make of it: "canny", or "" to use it as given),
        one per ControlNet, in order (none for a kind without ControlNets)."""
        return []

    def second_pass(self) -> dict:
        """A second, img2img pass at a larger size after the first (a hires fix): {"upscaler", "width",
        "height", "steps", "strength"}, or {} for none."""
        return {}

    def second_pass_steps(self) -> int:
        """The second pass's model steps (0 without one)."""
        return 0


@dataclass(kw_only=True)
class FromImageParams(DiffusionParams):
    """The kinds that start from an init image, repainting `strength` of it. Width and height default to
    the init image's size (fit in 1024, multiples of 8)."""

    inputs: ClassVar[tuple[str, ...]] = ("init_image", "ip_adapter_image")
    pipeline: ClassVar[str] = "image_to_image"

    width: int | None = None
    height: int | None = None
    strength: float = 0.7
    init_image: str = ""  # its storage name, once the job is admitted
    init_image_url: str | None = None  # the URL the client sent (echoed in meta), if it sent one

    def request_fields(self) -> dict:
        return {**super().request_fields(), "strength": self.strength, "init_image": self.init_image_url}

    def meta_inputs(self, input_url, hint_urls):
        return {
            **super().meta_inputs(input_url, hint_urls),
            "init_image": input_url(self.init_image_url, self.init_image),
            "strength": self.strength,
        }

    def complete(self, sizes):
        default_width, default_height = fit_size(*sizes["init_image"])
        self.width = self.width or default_width
        self.height = self.height or default_height

    @property
    def effective_strength(self) -> float:
        return strength_steps(self.strength, self.steps)

    def denoising_steps(self) -> int:
        return self.steps_at(self.effective_strength)

    def call_inputs(self, images, batch, hints):
        return {**start_inputs(images, self.size, self.effective_strength), **self.image_prompt(images)}


def start_inputs(images: dict, size: tuple, strength: float) -> dict:
    """An init image at the job's size and `strength`, and its mask when it has one."""
    inputs = {"image": images["init_image"].resize(size, Image.LANCZOS), "strength": strength}
    if "mask_image" in images:
        inputs["mask_image"] = images["mask_image"].convert("L").resize(size, Image.NEAREST)
        inputs.update(width=size[0], height=size[1])  # else diffusers answers 1024x1024
    return inputs


def scheduler_option_fields(options: dict) -> dict:
    """The scheduler options as their request fields, named as the options (only those the request set)."""
    return {name: flag(value) if isinstance(value, bool) else value for name, value in options.items()}


# The hosted service's API families (URL prefixes) an operation may be served under; generation/urls.py
# adds each family's own endpoints (fetch, model_list, ...).
V3 = "api/v3"
V3_DREAMBOOTH = "api/v3/dreambooth"
V4_DREAMBOOTH = "api/v4/dreambooth"
V5 = "api/v5"
V6_IMAGES = "api/v6/images"
V6_REALTIME = "api/v6/realtime"
V7_IMAGES = "api/v7/images"
ENTERPRISE = "api/v1/enterprise"
ENTERPRISE_IMAGES = "api/v1/enterprise/images"
ENTERPRISE_REALTIME = "api/v1/enterprise/realtime"
ENTERPRISE_TXT2IMG = "api/v1/enterprise/txt2img"  # the enterprise SDK's own name for the generation family
IMAGE_EDITING = ("api/v6/image_editing", "api/v1/image_editing", "api/v1/enterprise/image_editing")
IMAGES = (V6_IMAGES, V6_REALTIME, ENTERPRISE_IMAGES, ENTERPRISE_REALTIME, ENTERPRISE_TXT2IMG)  # generation families


@dataclass(frozen=True, eq=False)
class Operation:
    """An API operation: what a request asks for by name and the serializer that reads it, where it is
    served (`routes`: an API family's prefix -> its path there, "" for the family's own root) and how the
    playground offers it (`form`: the sections of its form; none: not in the playground)."""

    name: str
    serializer: type
    summary: str  # a line for the OpenAPI schema
    routes: dict[str, str]
    form: tuple[str, ...] = ()
    image_field: str = "init_image"  # the request field the playground's image goes in
    family_serializers: dict[str, type] = field(default_factory=dict)  # a family that reads it its own way
    preset: tuple[str, ...] = ()  # the parameters a preset sets itself (left out of the job page)


@dataclass(frozen=True, eq=False)
class Kind:
    """A kind of job: its parameters, its price, the predictor that runs it (by name: the worker's
    generation/runtime/registry.py holds the classes) and the operations that ask for it (the first is
    the kind's own, of the same name; others are presets of it, such as object_removal)."""

    params: type[JobParams]
    cost_setting: str  # the setting with its credits per output image
    predictor: str
    operations: tuple[Operation, ...]
    single_output: bool = False  # `output` is one URL string, not a list (and the answer has no meta)

    @property
    def name(self) -> str:
        return self.params.kind

    def cost(self, params: JobParams) -> int:
        """Credits a job with these parameters costs."""
        per_image = getattr(settings, self.cost_setting)
        return math.ceil(per_image * params.samples * params.cost_factor())
