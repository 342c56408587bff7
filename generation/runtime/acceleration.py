"""The fast path for GPUs: precision, attention, memory layout, fused projections, compilation, tiling.

Each option is a setting (off on CPU unless set); `apply()` runs once at load, on the modules the
text2img, img2img and inpaint pipelines share, and `warm_up()` runs the first (compiling) calls at
worker start so no user request pays for them. The recipe follows PyTorch's "Diffusion, Fast":
bf16 (fp16 on GPUs without bf16, where diffusers decodes the stock VAE in fp32 so it cannot overflow),
SDPA attention, channels_last, fused QKV, torch.compile.
"""

import logging
import time
from dataclasses import dataclass

import torch
from diffusers.models.attention_processor import AttnProcessor2_0
from django.conf import settings

from generation.kinds.text2img import Text2ImgParams
from generation.runtime.predictors import JobInput

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    dtype: str  # float16, bfloat16, float32
    channels_last: bool
    fuse_qkv: bool
    compile_mode: str  # "" (off), "default", "reduce-overhead", "max-autotune"
    vae_tiling: bool
    warmup_sizes: tuple  # ((width, height), ...)
    warmup_batch: int = 1  # a compiled worker also compiles a batch of this many images at start


def _flag(value: str, on_cuda: bool) -> bool:
    return on_cuda if value == "auto" else value.lower() in ("1", "true", "yes", "on")


def half_precision() -> str:
    """bf16 where the GPU has it (Ampere and later): fp16's speed, fp32's range, so the VAE needs no
    upcast to decode without overflowing; fp16 on older GPUs."""
    return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float16"


def options_for(device: str) -> Options:
    """The configured options for `device` (`auto` means on for CUDA, off elsewhere)."""
    cuda = device.startswith("cuda")
    dtype = settings.SDXL_DTYPE if settings.SDXL_DTYPE != "auto" else (half_precision() if cuda else "float32")
    compile_mode = "" if settings.SDXL_COMPILE in ("", "off", "no", "false", "0") else settings.SDXL_COMPILE
    sizes = tuple(tuple(int(side) for side in size.lower().split("x")) for size in settings.SDXL_WARMUP_SIZES if size)
    return Options(
        dtype={"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}.get(dtype, dtype),
        channels_last=_flag(settings.SDXL_CHANNELS_LAST, cuda),
        fuse_qkv=_flag(settings.SDXL_FUSE_QKV, cuda),
        compile_mode=compile_mode,
        vae_tiling=_flag(settings.SDXL_VAE_TILING, True),
        warmup_sizes=sizes,
        warmup_batch=max(2, settings.WORKER_MAX_BATCH) if compile_mode else 1,
    )


def apply(pipe, options: Options):
    """Apply the options to the pipeline's shared modules (after it is on its device)."""
    # 1. scaled-dot-product attention (flash / memory-efficient kernels where the GPU has them)
    pipe.unet.set_attn_processor(AttnProcessor2_0())
    pipe.vae.set_attn_processor(AttnProcessor2_0())
    # 2. one matmul for q, k and v instead of three
    if options.fuse_qkv:
        pipe.fuse_qkv_projections()
    # 3. NHWC memory layout, which tensor cores prefer for convolutions
    if options.channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    # 4. large images are decoded in overlapping tiles (no effect below the VAE's tile size)
    if options.vae_tiling:
        pipe.vae.enable_tiling()
    # 5. compiled in place, so the three pipelines keep sharing the one module
    if options.compile_mode:
        apply_compile(pipe, options.compile_mode)


def apply_compile(pipe, mode: str):
    pipe.unet.compile(mode=mode, fullgraph=True)
    pipe.vae.decoder.compile(mode=mode, fullgraph=True)


def warm_up(predictor, options: Options):
    """Run the first calls (compilation, cuDNN autotuning) at start, for each configured size: one image,
    then, when compiled, `warmup_batch` images (a worker's largest batch of jobs). torch.compile
    specialises on the first batch size and compiles a graph for any batch size at the second, so no
    job compiles anything later: neither a batch of jobs nor a job of several `samples`."""
    for width, height in options.warmup_sizes:
        started = time.perf_counter()
        job = JobInput(Text2ImgParams(prompt="warm-up", width=width, height=height, steps=2))
        predictor.predict(job)
        if options.warmup_batch > 1:
            predictor.predict_batch([job] * options.warmup_batch)
        logger.info("Warmed up %dx%d in %.1fs", width, height, time.perf_counter() - started)
