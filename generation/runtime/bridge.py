"""The worker's bridge between Django and the predictors. It resolves what a job names into a JobInput
(its stored input images decoded, the library models it chose as local files, the upscaler's weights),
keeps this process's predictor instances (a checkpoint's folder found in the library), and composes
post-steps: a generation's `upscale` runs the upscaling predictor on its images. With the RQ tasks
(generation/runtime/tasks.py), the only runtime module that reads the database, storage or the library:
predictors only predict.
"""

import logging
import shutil
import tempfile
from dataclasses import replace
from functools import partial
from pathlib import Path

from django.conf import settings

from billing import credits
from generation import kinds
from generation.infra.images import ImageInputError
from generation.inputs import library, storage
from generation.kinds.base import JobParams, ModelType, upscaler_for
from generation.kinds.super_resolution import SuperResolutionParams
from generation.runtime.predictors import GenerationError, JobInput, LocalModel, LoraChoice, Prediction, Predictor
from generation.runtime.registry import PREDICTORS, UPSCALE

logger = logging.getLogger(__name__)

_instances: dict[tuple[type, str], Predictor] = {}


def predictor(name: str, checkpoint: str = "") -> Predictor:
    """The process's predictor of that name (runtime/registry.py) on `checkpoint` (a library id; "" the
    default), created on first use, not yet set up."""
    cls = PREDICTORS[name]
    key = (cls, checkpoint if cls.per_checkpoint else "")
    if key not in _instances:
        weights = _checkpoint_folder(checkpoint) if cls.per_checkpoint else None
        _instances[key] = cls(device=settings.SDXL_DEVICE, weights=weights)
    return _instances[key]


def _checkpoint_folder(checkpoint: str):
    entry = library.find(checkpoint) if checkpoint else library.default_checkpoint()
    if entry is None:
        raise GenerationError(f"Failed: the model {checkpoint!r} is not in the library")
    return library.local_path(entry)


def held_checkpoints() -> tuple[list[str], list[str]]:
    """(the library ids of the checkpoints this worker holds, as its queues name them: "" the default)."""
    default = library.default_checkpoint().public_id
    held = settings.WORKER_CHECKPOINTS or [default]
    return held, ["" if checkpoint == default else checkpoint for checkpoint in held]


def setup_all(checkpoints: list[str], queues: list[str]) -> list[Predictor]:
    """The predictors of the kinds whose jobs come on `queues`, on each of `checkpoints`, set up (the
    worker does this before its first job; a training worker loads no generation pipeline)."""
    names = kinds.predictors_serving(queues, settings.GENERATION_QUEUES)
    every = (predictor(name, checkpoint) for name in PREDICTORS if name in names for checkpoint in checkpoints)
    predictors = list({id(p): p for p in every}.values())
    for each in predictors:
        each.setup()
    return predictors


def resolve(params: JobParams, job_key: str = "") -> JobInput:
    """What a job's parameters name, ready to predict from: its input images decoded (here, never in the
    web tier), the checkpoint of a job that loads its own, the state an earlier try of a resumable job
    saved (`job_key` names it). GenerationError when an image cannot be decoded or a model it chose is
    gone."""
    images = _input_images(params)
    named = params.models_named()
    models = _local_models(params.library_ids())

    def first(model_type: str) -> LocalModel | None:
        return next((models[name] for name in named.get(model_type, [])), None)

    resolved = JobInput(
        params=params,
        images=images,
        loras=[LoraChoice(models[lora], strength) for lora, strength in params.lora_weights()],
        embeddings=[models[name] for name in named.get(ModelType.EMBEDDING, [])],
        vae=first(ModelType.VAE),
        controlnets=[models[name] for name in named.get(ModelType.CONTROLNET, [])],
        ip_adapter=first(ModelType.IP_ADAPTER),
        segmenter=first(ModelType.SEGMENTATION),
    )
    resolved.upscalers = {model_id: _upscaler_weights(model_id) for model_id, _ in params.upscalers()}
    resolved.upscale = partial(_upscale, resolved.upscalers)
    if params.chooses_models and not PREDICTORS[kinds.get(params.kind).predictor].per_checkpoint:
        resolved.checkpoint = LocalModel(params.checkpoint, _checkpoint_folder(params.checkpoint))
    if params.resumable and job_key:
        resolved.state = storage.load_state(job_key, Path(tempfile.mkdtemp(prefix="job-state-")))
        resolved.save_state = partial(storage.save_state, job_key)
    return resolved


def _input_images(params: JobParams) -> dict:
    decoded = {}
    for field, name in params.input_names().items():
        try:
            image = storage.open_input(name, field, params.input_treatments.get(field, ()))
        except ImageInputError as exc:
            raise GenerationError(f"Failed: {exc}") from exc
        decoded[field] = params.prepare_input(field, image)
    return decoded


def _local_models(public_ids: set[str]) -> dict[str, LocalModel]:
    entries = library.find_all(public_ids) if public_ids else {}
    if missing := public_ids - set(entries):
        raise GenerationError(f"Failed: the model {sorted(missing)[0]!r} was removed from the library")
    return {
        public_id: LocalModel(public_id, library.local_path(entry), entry.content_hash, entry.size_bytes)
        for public_id, entry in entries.items()
    }


def _upscaler_weights(model_id: str) -> LocalModel | None:
    """The upscaler's installed weights; None in demo mode without them (a plain resize stands in)."""
    state = library.upscaler_state(model_id)
    if state == "missing":
        raise GenerationError(f"Failed: the upscaler {model_id} is not installed on this deployment")
    return LocalModel(model_id, library.upscaler_path(model_id)) if state == "installed" else None


def predict(kind: str, checkpoint: str, jobs: list[JobInput], on_step=None) -> list:
    """Run resolved jobs of one kind (several: one batch) on the predictor the kind names, then their
    post-steps. One entry per job: its Prediction or its GenerationError."""
    runner = predictor(kinds.get(kind).predictor, checkpoint)
    try:
        if len(jobs) == 1:
            try:
                results = [runner.predict(jobs[0], on_step=on_step)]
            except GenerationError as exc:
                results = [exc]
        else:
            results = runner.predict_batch(jobs, on_step=on_step)
    finally:
        for job in jobs:
            if job.state is not None:
                shutil.rmtree(job.state, ignore_errors=True)
    return [_post_steps(job, result) for job, result in zip(jobs, results)]


def forget_state(params: JobParams, job_key: str):
    """A resumable job has ended: its saved state is no longer needed."""
    if params.resumable:
        storage.delete_state(job_key)


def keep_model(job, path: Path) -> str:
    """The model file a job made, stored where its library entry reads it; its storage name."""
    try:
        return storage.save_model(job, path)
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


def deploy_model(job, stored_name: str):
    """The stored model as the job's owner's own library model (checked like any LoRA an admin adds;
    within the plan's quota). GenerationError when it cannot be."""
    params = job.parameters
    plan = credits.account_for(job.user).plan
    try:
        library.add_owned(job.user, plan, params.model_id(), stored_name, name=params.model_name())
    except library.InvalidModelFile as exc:
        raise GenerationError(f"Failed: the trained model did not pass the library's check ({exc})") from exc
    except library.OwnedQuotaFull as exc:
        raise GenerationError(
            f"Failed: your trained models would use more than your plan's {exc.quota // 2**20} MB; delete one"
        ) from exc


def discard_model(stored_name: str):
    """A stored model no library entry will read (its job failed or was canceled); "" is none."""
    if stored_name:
        storage.delete_names([stored_name])


def _upscale(weights: dict, image, scale: int, model_id: str):
    """An image through one of the job's upscalers (`weights`: what it resolved), on the upscaling
    predictor: a generation's `upscale` after it, a hires fix within its own steps."""
    job = JobInput(SuperResolutionParams(scale=scale, upscaler=model_id), images={"image": image}, upscalers=weights)
    return predictor(UPSCALE).predict(job).images[0]


def _post_steps(job: JobInput, result):
    """A generation's `upscale`: each image through the upscaling predictor, in the same job."""
    factor = job.params.upscale_after()
    if not isinstance(result, Prediction) or factor < 2:
        return result
    model_id = upscaler_for(factor)
    return replace(result, images=[job.upscale(image, factor, model_id) for image in result.images])
