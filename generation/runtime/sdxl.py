"""The SDXL predictor: `setup()` once per worker process, `predict(job)` per job (like a cog Predictor)."""

import copy
import inspect
import logging
import math
import time
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path

import diffusers
import numpy as np
import torch
from diffusers import (
    AutoencoderKL,
    AutoPipelineForImage2Image,
    AutoPipelineForInpainting,
    AutoPipelineForText2Image,
    ControlNetModel,
    StableDiffusionXLControlNetImg2ImgPipeline,
    StableDiffusionXLControlNetInpaintPipeline,
    StableDiffusionXLControlNetPipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLInpaintPipeline,
    StableDiffusionXLPipeline,
)
from diffusers.models import MultiControlNetModel
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from django.conf import settings
from PIL import Image
from safetensors.torch import load_file
from torch.nn import functional as F
from transformers import CLIPImageProcessor

from generation.kinds import schedulers
from generation.kinds.base import IP_ADAPTER_WEIGHTS, DiffusionParams, strength_steps
from generation.kinds.text2img import IMAGE_RESIZERS, LATENT_UPSCALE_MODES
from generation.runtime import acceleration
from generation.runtime.demo_model import build_demo_model
from generation.runtime.hints import control_hint
from generation.runtime.predictors import GenerationError, JobInput, LocalModel, Prediction, Predictor, pick_device

logger = logging.getLogger(__name__)

OUTPUT_ATTEMPTS = 2  # an invalid image is generated once more before the job fails
BLACK_LEVEL = 1 / 255


def valid_image(array) -> bool:
    """Finite values and not all black."""
    return bool(np.isfinite(array).all()) and float(array.max()) > BLACK_LEVEL


def _pin(model, device, dtype):
    """Make a diffusers model answer `.device` and `.dtype` with where load() put it. diffusers works
    them out by walking every submodule looking for offloading hooks, several times per image:
    milliseconds on the demo model, more on SDXL; our weights never move."""
    cls = type(model)
    model.__class__ = type(
        cls.__name__,
        (cls,),
        {"device": property(lambda self: device), "dtype": property(lambda self: dtype), "__doc__": cls.__doc__},
    )


def _pin_execution_device(pipeline, device):
    """The same for a pipeline's `_execution_device`, which diffusers works out from every component's
    offloading hooks on each use (a tenth of the worker's Python time per 64² job, measured)."""
    cls = type(pipeline)
    pipeline.__class__ = type(
        cls.__name__, (cls,), {"_execution_device": property(lambda self: device), "__doc__": cls.__doc__}
    )


# the pipelines a job asks for by name (DiffusionParams.pipeline), plain, with perturbed-attention guidance
# and with ControlNets: all made once from the one loaded set of weights
PIPELINES = {
    "text_to_image": (StableDiffusionXLPipeline, AutoPipelineForText2Image, StableDiffusionXLControlNetPipeline),
    "image_to_image": (
        StableDiffusionXLImg2ImgPipeline,
        AutoPipelineForImage2Image,
        StableDiffusionXLControlNetImg2ImgPipeline,
    ),
    "inpainting": (
        StableDiffusionXLInpaintPipeline,
        AutoPipelineForInpainting,
        StableDiffusionXLControlNetInpaintPipeline,
    ),
}
BASE = "text_to_image"  # the pipeline loaded from the weights, the others made from it

# Options every job of a class gets (PNDM's Runge-Kutta warm-up fails below 4 steps; SD configs skip it).
CLASS_DEFAULTS = {"PNDMScheduler": {"skip_prk_steps": True}}


def build_scheduler(class_name: str, options: dict, base_config):
    """A fresh scheduler instance from the model's own scheduler config (never mutates the shared one).

    Options a scheduler class does not accept are dropped, so "karras" on DDIM is a no-op, not a crash.
    """
    cls = getattr(diffusers, class_name)
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {**CLASS_DEFAULTS.get(class_name, {})}
    kwargs.update((key, value) for key, value in options.items() if key in accepted)
    if class_name == "DPMSolverSinglestepScheduler" and kwargs.get("algorithm_type", "").startswith("sde-"):
        kwargs["algorithm_type"] = "dpmsolver++"  # singlestep has no SDE variant
    return cls.from_config(base_config, **kwargs)


# The published linear approximation of SDXL's VAE decoder (latent channels -> RGB), as ComfyUI and
# A1111 use for live previews: no weights, well under a millisecond at 1024x1024.
SDXL_LATENT_RGB = (
    (0.3651, 0.4232, 0.4341),
    (-0.2533, -0.0042, 0.1068),
    (0.1076, 0.1111, -0.0362),
    (-0.3165, -0.2492, -0.2188),
)
SDXL_LATENT_RGB_BIAS = (0.1084, -0.0175, -0.0011)
PREVIEW_SIZE = 256


def latent_preview(latents, index: int = 0) -> Image.Image | None:
    """A rough RGB picture of image `index` of a batch from its latents (None for a latent space that
    is not SDXL's four channels)."""
    if latents.ndim != 4 or latents.shape[1] != 4:
        return None
    factors = torch.tensor(SDXL_LATENT_RGB, dtype=torch.float32)
    rgb = torch.einsum("chw,cr->hwr", latents[index].float().cpu(), factors) + torch.tensor(SDXL_LATENT_RGB_BIAS)
    array = ((rgb + 1) / 2).clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    image = Image.fromarray(array)
    scale = PREVIEW_SIZE / max(image.size)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR)


class SDXLPredictor(Predictor):
    """Holds one copy of one checkpoint's SDXL weights (`weights`: its diffusers folder, or a model id in
    the Hugging Face cache); text2img, img2img, inpaint and ControlNet jobs share them. LoRAs are named
    adapters and ControlNets loaded models, each kept in a bounded cache and switched per job; an
    IP-Adapter's layers are loaded once and swapped in for the jobs that use it; embeddings and another
    VAE are put in for one job and taken out after it, so no job leaks into the next."""

    per_checkpoint = True

    def __init__(self, *, device: str, weights: Path | None = None):
        super().__init__(device=device, weights=Path(weights or settings.SDXL_MODEL))
        self.pipelines = {}
        self.pag_pipelines = {}
        self.adapters = OrderedDict()  # adapter name -> bytes, least recently used first
        self.vaes = {}  # content hash -> a loaded library VAE
        self.controlnets = OrderedDict()  # content hash -> (ControlNetModel, bytes), least recently used first
        self.controlnet_pipelines = {}  # a pipeline's name -> its ControlNet twin, made on first use
        self.base_processors = None  # the UNet's own attention processors, kept when an IP-Adapter loads
        self.ip_adapter = None  # (key, its attention processors, its image projection) once one is loaded
        self.base_vae = None
        self.schedulers = {}
        self.base_scheduler_config = None
        self.safety = None  # (checker, image processor), loaded on first use
        self.options = None

    @property
    def loaded(self) -> bool:
        return bool(self.pipelines)

    @property
    def model_name(self) -> str:
        return self.weights.name

    def setup(self):
        """Load the weights once. Builds the demo model first when it is the configured model and missing."""
        if self.loaded:
            return
        started = time.perf_counter()
        # 1. where and in which precision (the fast-path options: generation/runtime/acceleration.py)
        self.device = pick_device(self.device)
        self.options = acceleration.options_for(self.device)
        dtype = getattr(torch, self.options.dtype)
        # 2. the demo model is built locally on first use
        if self.weights == Path(settings.DEMO_MODEL_PATH) and not (self.weights / "model_index.json").exists():
            build_demo_model(self.weights)
        # 3. weights, through the same from_pretrained path for the demo model and real SDXL
        extra = {}
        if settings.SDXL_VAE:
            extra["vae"] = AutoencoderKL.from_pretrained(settings.SDXL_VAE, dtype=dtype, use_safetensors=True)
        pipe = StableDiffusionXLPipeline.from_pretrained(
            str(self.weights), dtype=dtype, add_watermarker=False, use_safetensors=True, **extra
        )
        pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        self.base_scheduler_config = pipe.scheduler.config
        self.base_vae = pipe.vae
        # 4. image-to-image and inpainting share the same modules (no second copy of the weights)
        for name, (plain, _, _) in PIPELINES.items():
            self.pipelines[name] = pipe if name == BASE else plain.from_pipe(pipe, requires_aesthetics_score=False)
        # 5. perturbed-attention guidance (`self_attention`): the same modules again, guided on the mid block
        for name, (_, auto, _) in PIPELINES.items():
            self.pag_pipelines[name] = auto.from_pipe(self.pipelines[name], enable_pag=True, pag_applied_layers=["mid"])
        for pipeline in (*self.pipelines.values(), *self.pag_pipelines.values()):
            pipeline.set_progress_bar_config(disable=True)
            _pin_execution_device(pipeline, torch.device(self.device))
        for model in (pipe.unet, pipe.vae):  # after from_pipe, which checks the components' classes
            _pin(model, torch.device(self.device), dtype)
        # 6. the fast path, on the shared modules, then the first (compiling) calls before any job
        acceleration.apply(pipe, self.options)
        logger.info(
            "Loaded %s on %s (%s) in %.2fs with %s",
            self.weights,
            self.device,
            dtype,
            time.perf_counter() - started,
            self.options,
        )
        acceleration.warm_up(self, self.options)

    def predict(self, job: JobInput, on_step=None) -> Prediction:
        """Generate `params.samples` images; image i uses seed + i. `on_step(done, total, preview)` reports
        progress."""
        result = self._predict([job], on_step)[0]
        if isinstance(result, GenerationError):
            raise result
        return result

    def predict_batch(self, jobs: list[JobInput], on_step=None) -> list:
        """Several text2img jobs with one `batch_key()` in one pipeline call, with one generator per
        image, so that each image is the one its job gets alone. One entry per job: its Prediction, or
        the GenerationError of a job whose images stayed invalid (the others are unaffected).
        `on_step(done, total, preview)` as for `predict`, with `preview(i)` picturing image i of the batch."""
        return self._predict(jobs, on_step)

    def _predict(self, jobs: list[JobInput], on_step) -> list:
        self.setup()
        started = time.perf_counter()
        batch = [job.params for job in jobs]
        first = batch[0]
        pipe = self._pipeline(jobs[0])
        # 1. a fresh scheduler per call, so no job's scheduler leaks into the next
        pipe.scheduler = self._scheduler(first.scheduler, first.scheduler_options)

        # 2. progress from the real number of scheduler steps (second-order schedulers run more), with
        #    a preview decoded from the latents only when the caller asks for one
        step_end = _progress(on_step, 0, first.second_pass_steps())

        # 3. the pipeline call, one generator per image (image i of a job uses its seed + i); a job whose
        #    image came out NaN or all black (fp16 overflow, a numeric fault) is generated once more
        #    alone, then fails
        hints = [self._hints(job) for job in jobs]
        inputs = _image_inputs(jobs, hints)
        with self._models(jobs[0]):
            arrays = self._generate(pipe, batch, inputs, step_end, on_step, jobs[0].upscale)
            per_job, offset = [], 0
            for params in batch:
                per_job.append(arrays[offset : offset + params.samples])
                offset += params.samples
            valid = [all(valid_image(array) for array in arrays) for arrays in per_job]
            for index, params in enumerate(batch):
                for attempt in range(2, OUTPUT_ATTEMPTS + 1):
                    if valid[index]:
                        break
                    logger.warning("Invalid (NaN or black) output for seeds %s, try %d", params.seeds, attempt)
                    alone = _image_inputs([jobs[index]], [hints[index]])
                    retry = (step_end, on_step) if len(batch) == 1 else (None, None)
                    per_job[index] = self._generate(pipe, [params], alone, *retry, jobs[index].upscale)
                    valid[index] = all(valid_image(array) for array in per_job[index])
        seconds = time.perf_counter() - started
        return [
            self._finish(params, arrays, seconds, inputs, job_hints)
            if ok
            else GenerationError("Failed, Try Again (the model produced an invalid image)")
            for params, arrays, ok, job_hints in zip(batch, per_job, valid, hints)
        ]

    def _pipeline(self, job: JobInput):
        """The pipeline the job asks for: PAG's for `self_attention`, a ControlNet one with the job's
        ControlNets in place."""
        params = job.params
        if not job.controlnets:
            return (self.pag_pipelines if params.self_attention else self.pipelines)[params.pipeline]
        models = [self._controlnet(model, keep=job.controlnets) for model in job.controlnets]
        controlnet = models[0] if len(models) == 1 else MultiControlNetModel(models)
        name = params.pipeline
        if name not in self.controlnet_pipelines:
            # from the loaded modules (no second copy of the weights); the UNet and VAE passed by hand, since
            # from_pipe does not take over a module whose class _pin replaced
            base = self.pipelines[BASE]
            options = {} if name == BASE else {"requires_aesthetics_score": False}
            pipeline = PIPELINES[name][2].from_pipe(
                base, controlnet=controlnet, unet=base.unet, vae=base.vae, **options
            )
            pipeline.set_progress_bar_config(disable=True)
            _pin_execution_device(pipeline, torch.device(self.device))
            self.controlnet_pipelines[name] = pipeline
        pipeline = self.controlnet_pipelines[name]
        pipeline.controlnet = controlnet
        return pipeline

    def _controlnet(self, model: LocalModel, keep: list) -> ControlNetModel:
        """A library ControlNet, loaded on first use; the least recently used ones (not in `keep`) are
        dropped while the cache is over CONTROLNET_CACHE_COUNT models or CONTROLNET_CACHE_BYTES."""
        key = model.content_hash or str(model.path)
        if key in self.controlnets:
            self.controlnets.move_to_end(key)
            return self.controlnets[key][0]
        started = time.perf_counter()
        dtype = getattr(torch, self.options.dtype)
        try:
            loaded = ControlNetModel.from_pretrained(str(model.path), dtype=dtype, use_safetensors=True).to(self.device)
        except (OSError, ValueError, RuntimeError) as exc:
            raise GenerationError(f"Failed: the ControlNet {model.id!r} cannot be loaded") from exc
        _pin(loaded, torch.device(self.device), dtype)
        self.controlnets[key] = (loaded, model.size_bytes)
        logger.info("Loaded ControlNet %s in %.2fs", model.id, time.perf_counter() - started)
        kept = {other.content_hash or str(other.path) for other in keep}
        for old in list(self.controlnets):
            over = (
                len(self.controlnets) > settings.CONTROLNET_CACHE_COUNT
                or sum(size for _, size in self.controlnets.values()) > settings.CONTROLNET_CACHE_BYTES
            )
            if over and old not in kept:
                del self.controlnets[old]
        return loaded

    @staticmethod
    def _hints(job: JobInput) -> list:
        """A ControlNet job's hint per model, at the output size, as its control sources ask for them."""
        return [control_hint(image, hint) for image, hint in job.params.control_sources(job.images)]

    def _finish(self, params: DiffusionParams, arrays: list, seconds: float, inputs: dict, hints: list) -> Prediction:
        images = [Image.fromarray((array * 255).round().clip(0, 255).astype("uint8")) for array in arrays]
        # 4. inpainting repaints only the mask: outside it (black), the init image's own pixels, not their
        #    trip through the VAE; a grey mask blends the two
        if "mask_image" in inputs:
            images = [Image.composite(image, inputs["image"].convert("RGB"), inputs["mask_image"]) for image in images]
        # 5. optional NSFW filter: flagged images become black
        nsfw = None
        if params.safety_checker and settings.SAFETY_CHECKER_MODEL:
            images, nsfw = self._safety_filter(images)
        return Prediction(images=images, seeds=params.seeds, seconds=seconds, nsfw=nsfw, hints=hints)

    @contextmanager
    def _models(self, job: JobInput):
        """The job's LoRAs, embeddings and VAE in place for the pipeline call, and out again after it."""
        self._set_loras(job.loras)
        self._set_ip_adapter(job.ip_adapter, job.params.ip_adapter_scale)
        tokens = []
        try:
            for embedding in job.embeddings:
                tokens.append(self._load_embedding(embedding))
            self._set_vae(job.vae)
            yield
        finally:
            for loaded in tokens:
                self._unload_embedding(loaded)
            self._set_vae(None)

    def _all_pipelines(self):
        return (*self.pipelines.values(), *self.pag_pipelines.values(), *self.controlnet_pipelines.values())

    def _set_loras(self, chosen: list):
        """Switch the shared modules to these LoRAs at their strengths; none: the base weights exactly."""
        pipe = self.pipelines[BASE]
        if not chosen:
            if self.adapters:
                pipe.disable_lora()
            return
        names, strengths = [], []
        for choice in chosen:
            name = self._adapter(choice.model, keep=names)
            if name not in names:
                names.append(name)
                strengths.append(choice.strength)
        pipe.enable_lora()
        pipe.set_adapters(names, strengths)

    def _adapter(self, lora: LocalModel, keep: list) -> str:
        """The adapter of a library LoRA, loaded on first use; the least recently used ones (not in `keep`)
        are deleted while the cache is over LORA_CACHE_COUNT adapters or LORA_CACHE_BYTES."""
        name = f"lora_{(lora.content_hash or lora.id)[:16]}"
        if name in self.adapters:
            self.adapters.move_to_end(name)
            return name
        started = time.perf_counter()
        self.pipelines[BASE].load_lora_weights(str(lora.path), adapter_name=name, use_safetensors=True)
        self.adapters[name] = lora.size_bytes
        logger.info("Loaded LoRA %s in %.2fs", lora.id, time.perf_counter() - started)
        for old in list(self.adapters):
            over = (
                len(self.adapters) > settings.LORA_CACHE_COUNT
                or sum(self.adapters.values()) > settings.LORA_CACHE_BYTES
            )
            if over and old != name and old not in keep:
                self.pipelines[BASE].delete_adapters(old)
                del self.adapters[old]
        return name

    def _set_ip_adapter(self, chosen: LocalModel | None, scale: float):
        """A library IP-Adapter's layers in the UNet at `scale` (loaded on first use; another one replaces
        it); none: the UNet's own attention processors, so the image is the one without any adapter."""
        pipe = self.pipelines[BASE]
        unet = pipe.unet
        if chosen is None:
            if unet.encoder_hid_proj is not None:
                self._without_ip_layers(unet)
            return
        key = chosen.content_hash or str(chosen.path)
        if self.ip_adapter is None or self.ip_adapter[0] != key:
            self._set_ip_adapter(None, 0.0)
            self.base_processors = self.base_processors or dict(unet.attn_processors)
            started = time.perf_counter()
            try:
                pipe.load_ip_adapter(
                    str(chosen.path), subfolder="", weight_name=IP_ADAPTER_WEIGHTS, image_encoder_folder="image_encoder"
                )
            except Exception as exc:  # a half-loaded adapter must not reach the next job
                self.ip_adapter = None
                self._without_ip_layers(unet)
                raise GenerationError(f"Failed: the IP-Adapter {chosen.id!r} cannot be loaded") from exc
            for pipeline in self._all_pipelines():  # the pipelines made from this one share its encoder
                pipeline.register_modules(image_encoder=pipe.image_encoder, feature_extractor=pipe.feature_extractor)
            self.ip_adapter = (key, dict(unet.attn_processors), unet.encoder_hid_proj)
            logger.info("Loaded IP-Adapter %s in %.2fs", chosen.id, time.perf_counter() - started)
        elif unet.encoder_hid_proj is None:
            unet.set_attn_processor(dict(self.ip_adapter[1]))
            unet.encoder_hid_proj = self.ip_adapter[2]
            unet.config.encoder_hid_dim_type = "ip_image_proj"
        pipe.set_ip_adapter_scale(scale)

    def _without_ip_layers(self, unet):
        """The UNet's own attention processors back, and no image projection."""
        unet.set_attn_processor(dict(self.base_processors))  # diffusers empties the dict it is given
        unet.encoder_hid_proj = None
        unet.config.encoder_hid_dim_type = None

    def _load_embedding(self, embedding: LocalModel) -> list[str]:
        """Put a library embedding's vectors into both text encoders under its id; the tokens it added."""
        pipe = self.pipelines[BASE]
        vectors = load_file(str(embedding.path))
        for key, encoder, tokenizer in (
            ("clip_l", pipe.text_encoder, pipe.tokenizer),
            ("clip_g", pipe.text_encoder_2, pipe.tokenizer_2),
        ):
            try:
                pipe.load_textual_inversion(
                    vectors[key].to(encoder.dtype), token=embedding.id, text_encoder=encoder, tokenizer=tokenizer
                )
            except ValueError as exc:  # its token is already a word of the tokenizer
                raise GenerationError(f"Failed: the embedding {embedding.id!r} cannot be loaded ({exc})") from exc
        count = vectors["clip_l"].shape[0]
        return [embedding.id] + [f"{embedding.id}_{i}" for i in range(1, count)]

    def _unload_embedding(self, tokens: list[str]):
        pipe = self.pipelines[BASE]
        for encoder, tokenizer in ((pipe.text_encoder, pipe.tokenizer), (pipe.text_encoder_2, pipe.tokenizer_2)):
            pipe.unload_textual_inversion(tokens=tokens, tokenizer=tokenizer, text_encoder=encoder)

    def _set_vae(self, chosen: LocalModel | None):
        """A library VAE (loaded once, kept by content hash) on every pipeline; None: the checkpoint's own."""
        vae = self.base_vae
        if chosen is not None:
            vae = self.vaes.get(chosen.content_hash)
            if vae is None:
                dtype = getattr(torch, self.options.dtype)
                vae = AutoencoderKL.from_pretrained(str(chosen.path), dtype=dtype, use_safetensors=True)
                vae.to(self.device)
                if self.options.vae_tiling:
                    vae.enable_tiling()
                _pin(vae, torch.device(self.device), dtype)
                self.vaes[chosen.content_hash] = vae
        if self.pipelines[BASE].vae is not vae:
            for pipeline in self._all_pipelines():
                pipeline.vae = vae

    def _scheduler(self, name: str, options: dict):
        """A pristine copy of the scheduler built once per name and options (a copy is 4x cheaper than
        building it from the config again)."""
        key = (name, tuple(sorted(options.items())))
        if key not in self.schedulers:
            self.schedulers[key] = build_scheduler(name, options, self.base_scheduler_config)
        return copy.deepcopy(self.schedulers[key])

    def _generate(self, pipe, batch: list[DiffusionParams], inputs: dict, step_end, on_step, upscale) -> list:
        """The images of one call; with a hires fix, its first pass upscaled and repainted by img2img."""
        params = batch[0]
        hires = params.second_pass()
        if not hires:
            return self._call(pipe, batch, inputs, step_end)
        latent_mode = LATENT_UPSCALE_MODES.get(hires["upscaler"])
        first = self._call(pipe, batch, inputs, step_end, output_type="latent" if latent_mode else "pil")
        size = (hires["width"], hires["height"])
        if latent_mode:
            mode, antialias = latent_mode
            latents = torch.stack(first)
            start = F.interpolate(
                latents.float(), size=(size[1] // 8, size[0] // 8), mode=mode, antialias=antialias
            ).to(latents.dtype)
        else:
            start = [_resized(image, size, hires["upscaler"], upscale) for image in first]
        second = (self.pag_pipelines if params.self_attention else self.pipelines)["image_to_image"]
        second.scheduler = self._scheduler(params.scheduler, params.scheduler_options)
        done = pipe.num_timesteps
        steps = hires["steps"] or params.steps
        return self._call(
            second,
            batch,
            {"image": start, "strength": strength_steps(hires["strength"], steps)},
            _progress(on_step, done, 0) if step_end is not None else None,
            steps=steps,
        )

    def _call(self, pipe, batch: list[DiffusionParams], inputs: dict, step_end, steps=None, output_type="np") -> list:
        """One pipeline call for the jobs of `batch` (one job: its prompt, `samples` images of it)."""
        params = batch[0]
        steps = steps or params.steps
        generators = [torch.Generator(device="cpu").manual_seed(seed) for job in batch for seed in job.seeds]
        if len(batch) == 1:
            prompts = {"prompt": params.prompt, "negative_prompt": params.negative_prompt or None}
            per_prompt = params.samples
        else:  # one prompt per image; batch_key() makes the negative prompts all given or all empty
            prompts = {
                "prompt": [job.prompt for job in batch for _ in job.seeds],
                "negative_prompt": [job.negative_prompt for job in batch for _ in job.seeds]
                if params.negative_prompt
                else None,
            }
            per_prompt = 1
        timing = {"num_inference_steps": steps}
        if params.scheduler_options.get(schedulers.AYS) and schedulers.AYS in schedulers.ACCEPTED_OPTIONS.get(
            params.scheduler, ()
        ):
            timing["timesteps"] = schedulers.ays_timesteps(steps)
        with torch.inference_mode():
            result = pipe(
                **prompts,
                **timing,
                guidance_scale=params.guidance_scale,
                num_images_per_prompt=per_prompt,
                generator=generators,
                output_type=output_type,
                callback_on_step_end=step_end,
                **self._guidance(params),
                **inputs,
            )
        return list(result.images)

    def _guidance(self, params: DiffusionParams) -> dict:
        """`clip_skip` (at most the text encoder's depth less one), the perturbed-attention scale and `eta`
        (TCD's gamma, DDIM's eta: the pipeline hands it to the schedulers whose step takes it)."""
        options = {} if params.eta is None else {"eta": params.eta}
        if params.clip_skip:
            depth = self.pipelines[BASE].text_encoder.config.num_hidden_layers
            options["clip_skip"] = min(params.clip_skip, depth - 1)
        if params.self_attention:
            options["pag_scale"] = settings.PAG_SCALE
        return options

    def _safety_filter(self, images):
        if self.safety is None:
            checker = StableDiffusionSafetyChecker.from_pretrained(settings.SAFETY_CHECKER_MODEL).to(self.device)
            self.safety = (checker, CLIPImageProcessor.from_pretrained(settings.SAFETY_CHECKER_MODEL))
        checker, processor = self.safety
        clip_input = processor(images, return_tensors="pt").pixel_values.to(self.device, checker.dtype)
        arrays = np.stack([np.asarray(image, dtype=np.float32) / 255 for image in images])
        with torch.inference_mode():
            _, flags = checker(images=arrays, clip_input=clip_input)
        flags = [bool(flag) for flag in flags]
        filtered = [Image.new("RGB", image.size) if flag else image for image, flag in zip(images, flags)]
        return filtered, flags


def _image_inputs(jobs: list[JobInput], hints: list) -> dict:
    """Size and image inputs of a call, as the first job's parameters make them from its images (a job
    with an image prompt or an init image runs alone; a batch shares everything but its prompts)."""
    return jobs[0].params.call_inputs(jobs[0].images, [job.params for job in jobs], hints)


def _progress(on_step, done: int, still_to_come: int):
    """A pipeline's step callback reporting to `on_step` the steps of the whole job: `done` by earlier
    passes, this pass's, and `still_to_come` in later ones; the job's very last step says that decoding
    (the VAE, seconds on a CPU) follows."""

    def step_end(pipeline, step, timestep, callback_kwargs):
        if on_step is not None:
            latents = callback_kwargs["latents"]
            last = step + 1 == pipeline.num_timesteps and not still_to_come
            on_step(
                done + step + 1,
                done + pipeline.num_timesteps + still_to_come,
                preview=lambda index=0: latent_preview(latents, index),
                phase="decoding" if last else None,
            )
        return callback_kwargs

    return step_end


def _resized(image: Image.Image, size: tuple, upscaler: str, upscale) -> Image.Image:
    """A first-pass image at the hires size: by a plain resize, or a library upscaler (`upscale`, the
    bridge's) to the next whole factor, then resized to the exact size."""
    if upscaler in IMAGE_RESIZERS:
        return image.resize(size, Image.NEAREST if IMAGE_RESIZERS[upscaler] == "nearest" else Image.LANCZOS)
    factor = max(2, math.ceil(max(size[0] / image.width, size[1] / image.height)))
    return upscale(image, min(4, factor), upscaler).resize(size, Image.LANCZOS)
