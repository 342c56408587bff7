"""The predictor contract (like cog's): what the worker runs for a kind of job, and what it is given.

A Predictor is made once per worker process (per checkpoint when `per_checkpoint`), `setup()` loads its
weights once, and `predict()` runs one job from a JobInput: the job's parameters with everything
resolved — input images decoded, library models as local paths. A predictor looks nothing up itself
(no database, storage or library): the bridge (generation/runtime/bridge.py) does that before it runs.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from PIL import Image

from generation.kinds.base import JobParams


class GenerationError(Exception):
    """A job failed for a reason worth showing to the user."""


@dataclass(frozen=True)
class LocalModel:
    """A library model resolved to weights on this worker: a .safetensors file or a diffusers folder."""

    id: str
    path: Path
    content_hash: str = ""  # keys the predictor's caches, so a replaced file is never served stale
    size_bytes: int = 0


@dataclass(frozen=True)
class LoraChoice:
    model: LocalModel
    strength: float


@dataclass
class JobInput:
    """One job, resolved: its parameters and what they name, ready to predict from."""

    params: JobParams
    images: dict[str, Image.Image] = field(default_factory=dict)  # input field -> decoded RGB image
    loras: list[LoraChoice] = field(default_factory=list)
    embeddings: list[LocalModel] = field(default_factory=list)
    vae: LocalModel | None = None
    # each upscaler the job runs, by model id: its weights, or None where a plain resize stands in (demo mode)
    upscalers: dict[str, LocalModel | None] = field(default_factory=dict)
    # runs one of those upscalers: (image, scale, model id) -> image (a hires fix calls it within its steps)
    upscale: Callable[[Image.Image, int, str], Image.Image] | None = None
    controlnets: list[LocalModel] = field(default_factory=list)  # in the order of params.controlnets
    ip_adapter: LocalModel | None = None  # its folder: weights and image_encoder/
    segmenter: LocalModel | None = None  # background removal's ONNX model
    checkpoint: LocalModel | None = None  # the library checkpoint a job loads itself (a training's base)
    # a long job's resumable state: the folder an earlier try saved last (None: start afresh), and how to
    # save a newer one (the bridge keeps it where the next try finds it)
    state: Path | None = None
    save_state: Callable[[Path], None] | None = None


@dataclass
class Prediction:
    images: list
    seeds: list
    seconds: float  # in the model itself
    nsfw: list | None = None  # per image, when the safety checker ran
    hints: list = field(default_factory=list)  # a ControlNet job's control images as its models saw them
    model: Path | None = None  # the model file a job made (a training's LoRA), for its owner's library


# on_step(done, total, preview, phase, details, sample): called after each model step; may raise to stop
# the job. `preview`, when given, is a callable returning a rough image of the result so far (of image i
# of a batch: preview(i)); `phase`, after the last step, names the work that follows it ("decoding");
# `details` is what else the step reports (a training's loss); `sample` an image to keep and show (a
# training's sample of the LoRA so far).
StepCallback = Callable[..., None]


class Predictor(ABC):
    """Set up once per worker process, then predicts one job (or a batch of compatible jobs) at a time."""

    per_checkpoint: ClassVar[bool] = False  # one instance per library checkpoint (else one per process)

    def __init__(self, *, device: str, weights: Path | None = None):
        """`device`: "auto", "cpu", "cuda", ...; `weights`: the checkpoint folder of a per-checkpoint
        predictor. Nothing is loaded until setup()."""
        self.device = device
        self.weights = weights

    @property
    @abstractmethod
    def model_name(self) -> str:
        """What the worker advertises as its model."""

    @abstractmethod
    def setup(self) -> None:
        """Load what every job needs (once per process; later calls do nothing)."""

    @abstractmethod
    def predict(self, job: JobInput, on_step: StepCallback | None = None) -> Prediction:
        """Run one job; GenerationError for a failure worth telling the user."""

    def predict_batch(self, jobs: list[JobInput], on_step: StepCallback | None = None) -> list:
        """Several jobs with one `batch_key()`: one entry per job, its Prediction or its GenerationError
        (the others unaffected). Predictors that batch in one call override this; by default each runs
        alone."""
        results = []
        for job in jobs:
            try:
                results.append(self.predict(job, on_step))
            except GenerationError as exc:
                results.append(exc)
        return results


def pick_device(requested: str = "auto") -> str:
    if requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"
