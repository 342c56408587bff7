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
    def setup(self) -> None:
        """Load what every job needs (once per process; later calls do nothing)."""

    def predict(self, params: JobParams, on_step=None) -> Prediction:
        """Run one job. `on_step(done, total)` is called after each model step and may raise to stop it."""


def pick_device(requested: str = "auto") -> str:
    import torch

    if requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


_instances: dict[str, Predictor] = {}


def predictor_for(kind: str) -> Predictor:
    """The process's predictor for `kind` (created on first use, not yet set up)."""
    path = KINDS[kind].predictor
    if path not in _instances:
        _instances[path] = import_string(path)(device=settings.SDXL_DEVICE)
    return _instances[path]


def setup_all() -> list[Predictor]:
    """Every predictor of the kind table, set up (the worker does this before its first job)."""
    predictors = list({id(p): p for p in (predictor_for(kind) for kind in KINDS)}.values())
    for predictor in predictors:
        predictor.setup()
    return predictors
