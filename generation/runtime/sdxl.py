"""The SDXL predictor: `setup()` once per worker process, `predict(params)` per job (like a cog Predictor)."""

import copy
import inspect
import logging
import time
from pathlib import Path

import diffusers
import numpy as np
import torch
from diffusers import (
    AutoencoderKL,
    AutoPipelineForImage2Image,
    AutoPipelineForInpainting,
    AutoPipelineForText2Image,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLInpaintPipeline,
    StableDiffusionXLPipeline,
)
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from django.conf import settings
from PIL import Image
from transformers import CLIPImageProcessor

from generation import storage
from generation.params import Img2ImgParams, InpaintParams, Text2ImgParams
from generation.runtime import acceleration
from generation.runtime.demo_model import build_demo_model
from generation.runtime.predictors import GenerationError, Prediction, pick_device, predictor_for

logger = logging.getLogger(__name__)

OUTPUT_ATTEMPTS = 2  # an invalid image is generated once more before the job fails
BLACK_LEVEL = 1 / 255


def _valid_image(array) -> bool:
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


class SDXLPredictor:
    """Holds one copy of the SDXL weights; text2img, img2img and inpaint share them."""

    def __init__(self, model: str | None = None, device: str | None = None):
        self.model = model or settings.SDXL_MODEL
        self.device = device or settings.SDXL_DEVICE
        self.pipelines = {}
        self.pag_pipelines = {}
        self.schedulers = {}
        self.base_scheduler_config = None
        self.safety = None  # (checker, image processor), loaded on first use
        self.options = None

    @property
    def loaded(self) -> bool:
        return bool(self.pipelines)

    @property
    def model_name(self) -> str:
        return Path(self.model.rstrip("/")).name or self.model

    def setup(self):
        """Load the weights once. Builds the demo model first when it is the configured model and missing."""
        if self.loaded:
            return
        started = time.perf_counter()
        # 1. where and in which precision (the fast-path options: generation/acceleration.py)
        self.device = pick_device(self.device)
        self.options = acceleration.options_for(self.device)
        dtype = getattr(torch, self.options.dtype)
        # 2. the demo model is built locally on first use
        if Path(self.model) == Path(settings.DEMO_MODEL_PATH) and not (Path(self.model) / "model_index.json").exists():
            build_demo_model(Path(self.model))
        # 3. weights, through the same from_pretrained path for the demo model and real SDXL
        extra = {}
        if settings.SDXL_VAE:
            extra["vae"] = AutoencoderKL.from_pretrained(settings.SDXL_VAE, dtype=dtype)
        pipe = StableDiffusionXLPipeline.from_pretrained(self.model, dtype=dtype, add_watermarker=False, **extra)
        pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        self.base_scheduler_config = pipe.scheduler.config
        # 4. img2img and inpaint share the same modules (no second copy of the weights)
        self.pipelines["text2img"] = pipe
        self.pipelines["img2img"] = StableDiffusionXLImg2ImgPipeline.from_pipe(pipe, requires_aesthetics_score=False)
        self.pipelines["inpaint"] = StableDiffusionXLInpaintPipeline.from_pipe(pipe, requires_aesthetics_score=False)
        # 5. perturbed-attention guidance (`self_attention`): the same modules again, guided on the mid block
        for kind, auto in (
            ("text2img", AutoPipelineForText2Image),
            ("img2img", AutoPipelineForImage2Image),
            ("inpaint", AutoPipelineForInpainting),
        ):
            self.pag_pipelines[kind] = auto.from_pipe(self.pipelines[kind], enable_pag=True, pag_applied_layers=["mid"])
        for pipeline in (*self.pipelines.values(), *self.pag_pipelines.values()):
            pipeline.set_progress_bar_config(disable=True)
        for model in (pipe.unet, pipe.vae):  # after from_pipe, which checks the components' classes
            _pin(model, torch.device(self.device), dtype)
        # 6. the fast path, on the shared modules, then the first (compiling) calls before any job
        acceleration.apply(pipe, self.options)
        logger.info(
            "Loaded %s on %s (%s) in %.2fs with %s",
            self.model,
            self.device,
            dtype,
            time.perf_counter() - started,
            self.options,
        )
        acceleration.warm_up(self, self.options)

    def predict(self, params: Text2ImgParams, on_step=None) -> Prediction:
        """Generate `params.samples` images; image i uses seed + i. `on_step(done, total)` reports progress."""
        self.setup()
        started = time.perf_counter()
        pipe = (self.pag_pipelines if params.self_attention else self.pipelines)[params.kind]
        # 1. a fresh scheduler per job, so no job's scheduler leaks into the next
        pipe.scheduler = self._scheduler(params.scheduler, params.scheduler_options)

        # 2. progress from the real number of scheduler steps (second-order schedulers run more)
        def step_end(pipeline, step, timestep, callback_kwargs):
            if on_step is not None:
                on_step(step + 1, pipeline.num_timesteps)
            return callback_kwargs

        # 3. the pipeline call, one generator per image (image i uses seed + i); an image that came out
        #    NaN or all black (fp16 overflow, a numeric fault) is generated once more, then the job fails
        inputs = _image_inputs(params)
        for attempt in range(1, OUTPUT_ATTEMPTS + 1):
            arrays = self._call(pipe, params, inputs, step_end)
            if all(_valid_image(array) for array in arrays):
                break
            logger.warning(
                "Invalid (NaN or black) output for seeds %s, try %d of %d", params.seeds, attempt, OUTPUT_ATTEMPTS
            )
        else:
            raise GenerationError("Failed, Try Again (the model produced an invalid image)")
        images = [Image.fromarray((array * 255).round().clip(0, 255).astype("uint8")) for array in arrays]
        # 4. optional NSFW filter: flagged images become black
        nsfw = None
        if params.safety_checker and settings.SAFETY_CHECKER_MODEL:
            images, nsfw = self._safety_filter(images)
        # 5. `upscale`: through the Real-ESRGAN upscaler, in the same job
        if params.upscale > 1:
            upscaler = predictor_for("super_resolution")
            images = [upscaler.enlarge(image, params.upscale) for image in images]
        return Prediction(images=images, seeds=params.seeds, seconds=time.perf_counter() - started, nsfw=nsfw)

    def _scheduler(self, name: str, options: dict):
        """A pristine copy of the scheduler built once per name and options (a copy is 4x cheaper than
        building it from the config again)."""
        key = (name, tuple(sorted(options.items())))
        if key not in self.schedulers:
            self.schedulers[key] = build_scheduler(name, options, self.base_scheduler_config)
        return copy.deepcopy(self.schedulers[key])

    def _call(self, pipe, params: Text2ImgParams, inputs: dict, step_end) -> list:
        generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in params.seeds]
        with torch.inference_mode():
            result = pipe(
                prompt=params.prompt,
                negative_prompt=params.negative_prompt or None,
                num_inference_steps=params.steps,
                guidance_scale=params.guidance_scale,
                num_images_per_prompt=params.samples,
                generator=generators,
                output_type="np",
                callback_on_step_end=step_end,
                **self._guidance(params),
                **inputs,
            )
        return list(result.images)

    def _guidance(self, params: Text2ImgParams) -> dict:
        """`clip_skip` (at most the text encoder's depth less one) and the perturbed-attention scale."""
        options = {}
        if params.clip_skip:
            depth = self.pipelines["text2img"].text_encoder.config.num_hidden_layers
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


def _image_inputs(params: Text2ImgParams) -> dict:
    """Size and image inputs per kind."""
    size = (params.width, params.height)
    if not isinstance(params, Img2ImgParams):
        return {"width": size[0], "height": size[1]}
    inputs = {
        "image": storage.open_input(params.init_image).resize(size, Image.LANCZOS),
        "strength": params.effective_strength,
    }
    if isinstance(params, InpaintParams):
        inputs["mask_image"] = storage.open_input(params.mask_image).convert("L").resize(size, Image.NEAREST)
        inputs.update(width=size[0], height=size[1])  # else diffusers answers 1024x1024
    return inputs
