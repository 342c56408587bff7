"""The GPU fast-path options, checked for correctness on the CPU with the demo model: each gives the
same image as the plain path (bf16 within its precision), and all three pipelines keep sharing one
set of weights."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from generation.kinds.text2img import Text2ImgParams
from generation.runtime import acceleration
from generation.runtime.predictors import JobInput
from generation.runtime.sdxl import SDXLPredictor

PARAMS = Text2ImgParams(prompt="a lighthouse", width=64, height=64, steps=3, seed=3)


def image(settings, **options) -> np.ndarray:
    for name, value in options.items():
        setattr(settings, name, value)
    predictor = SDXLPredictor(device="cpu")
    predictor.setup()
    return np.asarray(predictor.predict(JobInput(PARAMS)).images[0], dtype=np.int16), predictor


@pytest.fixture
def baseline(settings):
    return image(settings)[0]


def test_options_are_off_on_cpu_unless_asked(settings):
    options = acceleration.options_for("cpu")
    assert (options.dtype, options.channels_last, options.fuse_qkv, options.compile_mode) == (
        "float32",
        False,
        False,
        "",
    )
    # "auto": bf16 where the GPU has it (no VAE upcast needed), else fp16 (CI has no GPU: fp16)
    expected = "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float16"
    assert acceleration.options_for("cuda").dtype == expected
    assert acceleration.options_for("cuda").channels_last and acceleration.options_for("cuda").fuse_qkv
    for setting, dtype in (("fp16", "float16"), ("bf16", "bfloat16"), ("fp32", "float32")):
        settings.SDXL_DTYPE = setting  # what is asked for wins, on any device
        assert acceleration.options_for("cuda").dtype == acceleration.options_for("cpu").dtype == dtype
    settings.SDXL_DTYPE = "auto"
    settings.SDXL_COMPILE = "default"  # a compiled worker warms up a batch too: its largest, at least 2
    assert acceleration.options_for("cuda").warmup_batch == 2
    settings.WORKER_MAX_BATCH = 6
    assert acceleration.options_for("cuda").warmup_batch == 6


def test_channels_last_and_fused_qkv_give_the_same_image(settings, baseline):
    fast, predictor = image(settings, SDXL_CHANNELS_LAST="on", SDXL_FUSE_QKV="on")
    assert np.abs(fast - baseline).max() <= 2
    unet = predictor.pipelines["text_to_image"].unet
    assert any("Fused" in type(p).__name__ for p in unet.attn_processors.values())
    assert predictor.pipelines["image_to_image"].unet is unet and predictor.pipelines["inpainting"].unet is unet


def test_bfloat16_stays_close(settings, baseline):
    half, predictor = image(settings, SDXL_DTYPE="bf16")
    assert str(predictor.pipelines["text_to_image"].unet.dtype) == "torch.bfloat16"
    assert np.abs(half - baseline).mean() < 4


def test_vae_tiling_decodes_large_images_in_tiles_and_small_ones_whole(settings):
    wide = replace(PARAMS, width=1088, height=64, steps=1)  # wider than the VAE's tile
    images = {}
    for tiling in ("on", "off"):
        _, predictor = image(settings, SDXL_VAE_TILING=tiling)
        assert predictor.pipelines["text_to_image"].vae.use_tiling == (tiling == "on")
        images[tiling] = [
            np.asarray(predictor.predict(JobInput(job)).images[0], dtype=np.int16) for job in (PARAMS, wide)
        ]
    assert np.array_equal(images["on"][0], images["off"][0])  # a small image is decoded whole either way
    assert images["on"][1].shape == (64, 1088, 3)
    assert not np.array_equal(images["on"][1], images["off"][1])  # a large one in blended tiles


def test_torch_compile_warms_up_at_load_and_gives_the_same_image(settings, baseline):
    """The slowest test (inductor builds C++ kernels for the CPU), kept because compilation is the
    option most likely to change an image. The worker compiles its batch shapes at load too: no job,
    alone, of several samples or in a batch of any size up to WORKER_MAX_BATCH, compiles anything later."""
    settings.WORKER_MAX_BATCH = 3
    settings.SDXL_COMPILE, settings.SDXL_WARMUP_SIZES = "default", ["64x64"]
    predictor = SDXLPredictor(device="cpu")
    predictor.setup()
    assert (predictor.options.compile_mode, predictor.options.warmup_batch) == ("default", 3)
    with torch.compiler.set_stance("fail_on_recompile"):
        alone = predictor.predict(JobInput(PARAMS)).images[0]
        batch = predictor.predict_batch([JobInput(PARAMS), JobInput(replace(PARAMS, prompt="a harbour", seed=4))])
        predictor.predict(JobInput(replace(PARAMS, samples=4)))
    assert np.abs(np.asarray(alone, dtype=np.int16) - baseline).max() <= 2
    assert np.abs(np.asarray(batch[0].images[0], dtype=np.int16) - baseline).mean() <= 2
