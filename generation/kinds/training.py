"""training: a LoRA trained on a user's photos of a subject or a style — the hosted API's `lora_fine_tune`
(a LoRA of the UNet's attention) and `fine_tune` (DreamBooth: a LoRA of the UNet and both text encoders
of a library checkpoint, not a full copy of it). The LoRA is its owner's: once the training is ready, its
`training_id` is a `lora_model` of that account only.

Trainings run on their own queue (TRAINING_QUEUE), on workers that serve it. Their stages, in the hosted
service's words: queued `deploying_gpu`; running `training_started`; then, as the worker finishes,
`training_success`, `trained_model_compressing`, `trained_model_uploading`, `trained_model_uploaded`,
`deploying_model` and `model_ready` (the job's success) — or `failed`.
"""

import secrets
from dataclasses import dataclass, field
from typing import ClassVar

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from PIL import Image, ImageOps
from rest_framework import serializers

from generation.infra import images
from generation.kinds.base import InvalidInput, JobParams, Kind, Operation
from generation.kinds.fields import LenientChoiceField, LenientNumberField, LenientTextField
from generation.kinds.requests import MAX_SEED, JobSerializer, random_seed, reason

QUEUED, RUNNING = "deploying_gpu", "training_started"
FINISHING = (
    "training_success",
    "trained_model_compressing",
    "trained_model_uploading",
    "trained_model_uploaded",
    "deploying_model",
)
READY, FAILED = "model_ready", "failed"
STAGES = (QUEUED, RUNNING, *FINISHING, READY)
TRAINING_TYPES = ("men", "female", "women", "couple", "null", "none")
MAX_STEPS = 20000
MAX_IMAGES = 100  # a request's photos before the plan's own limit (a .zip counts once it is opened)


def new_training_id() -> str:
    """A training's public id, which is also its LoRA's library id (unguessable, like the hosted ones)."""
    return secrets.token_hex(10)


@dataclass(kw_only=True)
class TrainingParams(JobParams):
    kind: ClassVar[str] = "training"
    chooses_models: ClassVar[bool] = True  # its base checkpoint
    queue: ClassVar[str | None] = settings.TRAINING_QUEUE
    stages: ClassVar[tuple[str, ...]] = STAGES
    makes_model: ClassVar[bool] = True
    resumable: ClassVar[bool] = True

    training_id: str = ""
    dreambooth: bool = False  # fine_tune: the text encoders are trained too
    instance_prompt: str = ""
    class_prompt: str = ""  # prior preservation when given: images of the class made by the base model
    negative_prompt: str = ""  # of the sample images
    training_type: str = ""
    steps: int = 500
    resolution: int = 1024  # the worker trains at the model's own size when that is smaller
    rank: int = 16
    learning_rate: float = 1e-4
    text_encoder_learning_rate: float = 5e-6
    class_images: int = 0
    class_steps: int = 20  # denoising steps of each class image
    prior_loss_weight: float = 1.0
    min_snr_gamma: float = 0.0  # min-SNR loss weighting (0: plain MSE)
    sample_every: int = 100
    sample_steps: int = 20
    checkpoint_every: int = 50
    sandbox: bool = False  # free and capped to a few steps (/api/sandbox/v3/...)
    images: list = field(default_factory=list)  # the stored photos
    image_urls: list = field(default_factory=list)  # the URLs sent (None for one sent inline)
    image_count: int = 0

    def request_fields(self) -> dict:
        return {
            **super().request_fields(),
            "instance_prompt": self.instance_prompt,
            "class_prompt": self.class_prompt or None,
            "negative_prompt": self.negative_prompt or None,
            "training_type": self.training_type or None,
            "max_train_steps": self.steps,
            "base_model_id": self.checkpoint or None,
            "images": [url for url in self.image_urls if url] or None,
        }

    @property
    def width(self) -> int:
        """Its images' (the samples') size."""
        return self.resolution

    @property
    def height(self) -> int:
        return self.resolution

    # its photos: any number, each stored as it came, made square at the training size on the worker
    def input_names(self) -> dict[str, str]:
        return {f"images_{index}": name for index, name in enumerate(self.images, start=1)}

    def take_input(self, name: str, stored: str):
        self.images.append(stored)

    def prepare_input(self, name: str, image: Image.Image) -> Image.Image:
        return ImageOps.fit(image, (self.resolution, self.resolution), Image.LANCZOS)

    def complete(self, sizes):
        self.image_count = len(sizes)

    def clamp_to_plan(self, max_side: int, max_samples: int):
        self.resolution = min(self.resolution, max_side)

    def fit_to_model(self, side: int):
        self.resolution = min(self.resolution, side)

    def check_plan(self, plan):
        """Between TRAINING_MIN_IMAGES and the plan's photos, steps up to the plan's (the sandbox's
        few), before anything is charged."""
        most = plan.max_training_images
        if self.image_count < settings.TRAINING_MIN_IMAGES:
            raise InvalidInput(
                "images",
                f"The images must be at least {settings.TRAINING_MIN_IMAGES} photos of the subject "
                f"(5 to {most} work best); {self.image_count} given.",
            )
        if self.image_count > most:
            raise InvalidInput(
                "images", f"The images may be at most {most} photos on your plan; {self.image_count} given."
            )
        self.steps = min(
            self.steps, plan.max_training_steps, *([settings.TRAINING_SANDBOX_STEPS] if self.sandbox else [])
        )

    def input_pixel_budget(self) -> int:
        """Each photo is made small on the worker before the next is decoded: no budget but each's own."""
        return settings.INPUT_IMAGE_MAX_PIXELS * MAX_IMAGES * 2

    def max_in_flight(self, plan) -> int | None:
        return plan.max_concurrent_trainings

    def timeout(self) -> int:
        return settings.TRAINING_JOB_TIMEOUT

    def model_id(self) -> str:
        return self.training_id

    def model_name(self) -> str:
        return self.instance_prompt

    # price and timing ------------------------------------------------------------------------------

    def cost_factor(self) -> float:
        """Hundreds of steps at the training size's area against 1024x1024 (CREDITS_PER_100_TRAINING_STEPS
        each); the sandbox is free."""
        return 0.0 if self.sandbox else self.steps / 100 * (self.resolution / 1024) ** 2

    def denoising_steps(self) -> int:
        return self.steps

    def work(self) -> float:
        return float(self.resolution**2 * (2 if self.dreambooth else 1))

    def shape(self) -> str:
        return f"{self.kind}:{self.resolution}:{'dreambooth' if self.dreambooth else 'lora'}"


@extend_schema_field(
    {
        "oneOf": [
            {"type": "array", "items": {"type": "string"}, "description": "image URLs, base64 or data URLs"},
            {"type": "string", "description": "the URL of a .zip of the photos"},
        ]
    }
)
class DatasetField(serializers.Field):
    """`images`: the photos, a list of URLs (this server's own outputs and uploads are read from
    storage), base64 strings or data URLs; a URL of a .zip of them counts as its images."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "The photos: a list of image URLs, base64 strings or data URLs, or a .zip URL.")
        super().__init__(**kwargs)

    def fail(self, key, **kwargs):
        if key == "required":
            raise serializers.ValidationError("The images field is required: a list of 5-20 photos.")
        super().fail(key, **kwargs)

    def to_internal_value(self, data):
        values = data if isinstance(data, list) else [data]
        if not values or len(values) > MAX_IMAGES:
            raise serializers.ValidationError(f"The images must be a list of 1-{MAX_IMAGES} photos (or a .zip URL).")
        try:
            return [
                images.parse(value, "images", name=f"image {index} of images", archives=True)
                for index, value in enumerate(values, start=1)
            ]
        except images.ImageInputError as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def to_representation(self, value):
        return value


class LoraFineTuneSerializer(JobSerializer):
    """lora_fine_tune: a LoRA of the UNet trained on the photos (values may arrive as strings)."""

    dreambooth: ClassVar[bool] = False

    instance_prompt = LenientTextField(max_length=1000, help_text='Names the subject: "photo of zxq man".')
    class_prompt = LenientTextField(
        max_length=1000, required=False, default="", help_text="Its class (prior preservation): 'photo of a man'."
    )
    negative_prompt = LenientTextField(max_length=2000, required=False, default="", help_text="Of the sample images.")
    images = DatasetField()
    base_model_type = LenientTextField(max_length=50, required=False, default=None, help_text='"sdxl" (or "normal").')
    training_type = LenientChoiceField(choices=TRAINING_TYPES, help_text="men, female, women, couple or null")
    max_train_steps = LenientNumberField(minimum=1, maximum=MAX_STEPS, integer=True, default=None)
    lora_type = LenientTextField(max_length=50, required=False, default=None, help_text='"lora" (or "lycoris").')
    seed = LenientNumberField(integer=True, maximum=MAX_SEED, default=None)
    wandb_key = LenientTextField(max_length=200, required=False, default=None)

    def validate(self, data):
        training_id = new_training_id()
        sandbox = self.context.get("sandbox", False)
        params = TrainingParams(
            training_id=training_id,
            dreambooth=self.dreambooth,
            operation=(DREAMBOOTH if self.dreambooth else LORA).name,
            instance_prompt=data["instance_prompt"].strip(),
            class_prompt=(data["class_prompt"] or "").strip(),
            negative_prompt=data["negative_prompt"] or "",
            training_type=data["training_type"] or "",
            steps=data["max_train_steps"] or settings.TRAINING_DEFAULT_STEPS,
            resolution=settings.TRAINING_RESOLUTION,
            rank=settings.TRAINING_RANK,
            learning_rate=settings.TRAINING_LEARNING_RATE,
            text_encoder_learning_rate=settings.TRAINING_TEXT_ENCODER_LEARNING_RATE,
            class_steps=settings.TRAINING_CLASS_STEPS,
            prior_loss_weight=settings.TRAINING_PRIOR_LOSS_WEIGHT,
            min_snr_gamma=settings.TRAINING_MIN_SNR_GAMMA,
            sample_every=settings.TRAINING_SAMPLE_EVERY,
            sample_steps=settings.TRAINING_SAMPLE_STEPS,
            checkpoint_every=settings.TRAINING_CHECKPOINT_EVERY,
            seed=random_seed(data["seed"]),
            sandbox=sandbox,
            checkpoint=self.base_model(data),
            image_urls=[source.url for source in data["images"]],
            not_applied=self.not_applied(data),
        )
        if not params.instance_prompt:
            raise serializers.ValidationError({"instance_prompt": ["The instance prompt field is required."]})
        params.class_images = settings.TRAINING_CLASS_IMAGES if params.class_prompt else 0
        sources = {f"images_{index}": source for index, source in enumerate(data["images"], start=1)}
        return self.submission(data, params, sources)

    def base_model(self, data) -> str:
        """lora_fine_tune trains on the default checkpoint."""
        return ""

    def not_applied(self, data) -> list[dict]:
        notes = []
        if data["lora_type"] and data["lora_type"].strip().lower() == "lycoris":
            notes.append(reason("lora_type", "LyCORIS is not trained here; a plain LoRA (kohya/diffusers layout) is"))
        if data["base_model_type"] and data["base_model_type"].strip().lower() not in ("sdxl", ""):
            notes.append(reason("base_model_type", "this deployment trains SDXL LoRAs only"))
        if data["wandb_key"]:
            notes.append(reason("wandb_key", "Weights & Biases is not called; watch the loss on fine_tune_status"))
        return notes


class FineTuneSerializer(LoraFineTuneSerializer):
    """fine_tune (DreamBooth): a LoRA of the UNet and both text encoders of `base_model_id`."""

    dreambooth: ClassVar[bool] = True

    base_model_id = LenientTextField(max_length=100, required=False, default="", help_text="A library checkpoint.")

    def base_model(self, data) -> str:
        return (data["base_model_id"] or "").strip()

    def not_applied(self, data) -> list[dict]:
        full_copy = (
            "DreamBooth trains a LoRA of the UNet and both text encoders here, not a full copy of the checkpoint"
        )
        return [*super().not_applied(data), reason("fine_tune", full_copy)]


LORA = Operation(
    name="lora_fine_tune",
    serializer=LoraFineTuneSerializer,
    summary="Train a LoRA on photos of a subject or a style",
    routes={},  # the training API has its own paths (generation/api/training.py)
)
DREAMBOOTH = Operation(
    name="fine_tune",
    serializer=FineTuneSerializer,
    summary="Train a DreamBooth LoRA of a library checkpoint",
    routes={},
)
KIND = Kind(
    params=TrainingParams,
    cost_setting="CREDITS_PER_100_TRAINING_STEPS",
    predictor="trainer",
    operations=(LORA, DREAMBOOTH),
)
