"""Typed job parameters and the registry of kinds: fast checks of each rule (no worker, no server)."""

import dataclasses
import inspect

import pytest

from generation import kinds
from generation.kinds.base import InvalidInput, fit_size
from generation.kinds.img2img import Img2ImgParams
from generation.kinds.inpaint import InpaintParams
from generation.kinds.super_resolution import SuperResolutionParams
from generation.kinds.text2img import Text2ImgParams
from generation.models import Job
from generation.runtime.predictors import Predictor
from generation.runtime.registry import PREDICTORS


def test_every_kind_has_its_params_predictor_and_cost(settings):
    assert list(Job.Kind.values) == list(kinds.KINDS)
    for name, kind in kinds.KINDS.items():
        assert kind.params.kind == name
        # its own operation first; training's operations are the training API's own names and paths
        assert kind.operations[0].name == name or not any(operation.routes for operation in kind.operations)
        assert isinstance(getattr(settings, kind.cost_setting), int)
        assert kind.predictor in PREDICTORS
    assert [name for name, kind in kinds.KINDS.items() if kind.single_output] == ["super_resolution", "base64_crop"]
    assert kinds.OWNER["object_removal"] is kinds.get("inpaint")  # a preset of inpaint


@pytest.mark.parametrize("name", sorted(PREDICTORS))
def test_every_registered_predictor_keeps_the_contract(name):
    """What callers use is what the contract says: made with a device (and a checkpoint's weights), set up
    once, predicting one job or a batch, naming its model and device; nothing loaded before setup()."""
    cls = PREDICTORS[name]
    assert issubclass(cls, Predictor) and not inspect.isabstract(cls)
    for method in ("__init__", "setup", "predict", "predict_batch"):
        assert list(inspect.signature(getattr(cls, method)).parameters) == list(
            inspect.signature(getattr(Predictor, method)).parameters
        ), (cls, method)
    assert isinstance(inspect.getattr_static(cls, "model_name"), property)
    predictor = cls(device="cpu")
    assert predictor.device == "cpu" and isinstance(predictor.model_name, str) and predictor.model_name
    assert isinstance(cls.per_checkpoint, bool)


def test_kinds_that_share_a_predictor_share_its_weights():
    named = {kinds.get(name).predictor for name in ("text2img", "img2img", "inpaint", "controlnet", "outpaint")}
    assert len(named) == 1


def test_stored_params_round_trip_and_older_keys_are_ignored():
    params = InpaintParams(
        prompt="a sofa",
        width=64,
        height=64,
        init_image="inputs/a.png",
        mask_image="inputs/m.png",
        scheduler_options={"use_karras_sigmas": True},
        webhook="https://x.test/h",
        track_id=7,
    )
    stored = params.to_dict()
    assert kinds.parameters("inpaint", stored) == params
    assert kinds.parameters("inpaint", {**stored, "seeds": [1], "nsfw_content_detected": [False]}) == params
    assert "kind" not in stored and "inputs" not in stored  # class facts, not parameters


def test_image_i_uses_seed_plus_i():
    assert Text2ImgParams(prompt="x", seed=10, samples=3).seeds == [10, 11, 12]


@pytest.mark.parametrize(
    ("params", "steps"),
    [
        (Text2ImgParams(prompt="x", steps=20), 20),
        (Text2ImgParams(prompt="x", steps=20, scheduler="HeunDiscreteScheduler"), 39),
        (Img2ImgParams(prompt="x", steps=20, strength=0.5), 10),
        (Img2ImgParams(prompt="x", steps=20, strength=0.0), 1),  # at least one step always runs
        (SuperResolutionParams(), 0),
    ],
)
def test_denoising_steps_count_what_the_scheduler_really_runs(params, steps):
    assert params.denoising_steps() == steps


def test_img2img_size_defaults_to_the_init_image_fitted_in_1024():
    params = Img2ImgParams(prompt="x")
    params.complete({"init_image": (2000, 1000)})
    assert (params.width, params.height) == fit_size(2000, 1000) == (1024, 512)
    explicit = Img2ImgParams(prompt="x", width=128, height=64)
    explicit.complete({"init_image": (2000, 1000)})
    assert (explicit.width, explicit.height) == (128, 64)


def test_plan_limits_clamp_sizes_keeping_their_shape_and_samples_but_not_an_upscale_input():
    params = Text2ImgParams(prompt="x", width=1024, height=520, samples=4)
    params.clamp_to_plan(max_side=515, max_samples=2)
    assert (params.width, params.height, params.samples) == (512, 256, 2)
    for asked, clamped in (((832, 1216), (344, 512)), ((1536, 1024), (512, 336)), ((256, 512), (256, 512))):
        sized = Text2ImgParams(prompt="x", width=asked[0], height=asked[1])
        sized.clamp_to_plan(512, 4)
        assert (sized.width, sized.height) == clamped  # scaled alike, not squashed to 512x512
    hires = Text2ImgParams(prompt="x", width=512, height=256, hires={"width": 1024, "height": 512})
    hires.clamp_to_plan(512, 4)
    assert (hires.width, hires.height, hires.hires["width"], hires.hires["height"]) == (512, 256, 512, 256)
    unsized = Img2ImgParams(prompt="x")
    unsized.clamp_to_plan(512, 4)
    assert unsized.width is None  # filled from the image later, then clamped
    upscale = SuperResolutionParams(width=2000, height=2000)
    upscale.clamp_to_plan(512, 1)
    assert (upscale.width, upscale.height) == (2000, 2000)


def test_an_image_too_large_to_upscale_is_invalid_input(settings):
    settings.UPSCALE_MAX_INPUT_PIXELS = 100
    with pytest.raises(InvalidInput) as refused:
        SuperResolutionParams().complete({"image": (20, 10)})
    assert refused.value.field_name == "url" and "too large to upscale (20x10)" in refused.value.message


def test_cost_is_the_kinds_credits_per_image_times_images(settings):
    settings.CREDITS_PER_IMAGE, settings.CREDITS_PER_UPSCALE = 3, 5
    assert kinds.cost(Text2ImgParams(prompt="x", samples=4)) == 12
    assert kinds.cost(SuperResolutionParams()) == 5


def test_a_hires_fix_costs_the_work_it_adds(settings):
    """Twice the sides is four times the pixels, repainted for 0.5 of the steps: 1 + 4 x 0.5 = 3 times."""
    settings.CREDITS_PER_IMAGE = 1
    hires = {"upscaler": "Latent", "width": 128, "height": 128, "steps": 0, "strength": 0.5}
    params = Text2ImgParams(prompt="x", width=64, height=64, steps=20, samples=2, hires=hires)
    assert (params.second_pass_steps(), params.denoising_steps(), kinds.cost(params)) == (10, 30, 6)
    assert kinds.cost(Text2ImgParams(prompt="x", width=64, height=64, steps=20, samples=2)) == 2


def test_shapes_group_jobs_that_take_the_same_time():
    assert Text2ImgParams(prompt="a").shape() == Text2ImgParams(prompt="b", seed=9).shape()
    assert Text2ImgParams(prompt="a").shape() != dataclasses.replace(Text2ImgParams(prompt="a"), samples=2).shape()
    assert SuperResolutionParams(width=64, height=64, scale=2).work() == 64 * 64 * 4
