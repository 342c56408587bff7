"""What the worker runs per kind of job: a Predictor (like a cog Predictor) is set up once per worker
process and then predicts one job at a time. Which class serves which kind is the kind table's
`predictor` (generation/params.py); kinds that share a class share its one instance and its weights."""

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from django.conf import settings
from django.utils.module_loading import import_string

from generation.params import KINDS, JobParams


class GenerationError(Exception):
    """A job failed for a reason worth showing to the user."""


@dataclass
class Prediction:
    images: list
    seeds: list
    seconds: float  # in the model itself
    nsfw: list | None = None  # per image, when the safety checker ran


@runtime_checkable
class Predictor(Protocol):
    per_checkpoint: bool  # one instance per library checkpoint (else one per process)

    def setup(self) -> None:
        """Load what every job needs (once per process; later calls do nothing)."""

    def predict(self, params: JobParams, on_step=None) -> Prediction:
        """Run one job. `on_step(done, total, preview)` is called after each model step and may raise to
        stop it; `preview`, when given, is a callable that returns a rough image of the result so far."""


def pick_device(requested: str = "auto") -> str:
    import torch

    if requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


_instances: dict[tuple[str, str], Predictor] = {}


def predictor_for(kind: str, checkpoint: str = "") -> Predictor:
    """The process's predictor for `kind` on `checkpoint` (a library id; "" the default), created on
    first use, not yet set up. A predictor class with `per_checkpoint` holds one checkpoint's weights."""
    path = KINDS[kind].predictor
    cls = import_string(path)
    key = (path, checkpoint if cls.per_checkpoint else "")
    if key not in _instances:
        _instances[key] = cls(device=settings.SDXL_DEVICE, checkpoint=key[1])
    return _instances[key]


def setup_all(checkpoints: list[str]) -> list[Predictor]:
    """Every predictor of the kind table on each of `checkpoints`, set up (the worker does this before its
    first job)."""
    every = (predictor_for(kind, checkpoint) for kind in KINDS for checkpoint in checkpoints)
    predictors = list({id(p): p for p in every}.values())
    for predictor in predictors:
        predictor.setup()
    return predictors
