"""Few-step models (SDXL-Lightning, LCM-LoRA, Hyper-SD, Turbo): a library model carries its own sampling,
requests that name it get it unless they ask otherwise within its ranges, guidance <= 1 runs one UNet
call per step, TCD honours eta, and the realtime endpoints run the deployment's fast model. The LoRAs are
made here like the library tests' (tests/model_files.py); the presets are the families' own."""

import json

import numpy as np
import pytest
from diffusers import UNet2DConditionModel
from django.core.management import call_command
from django.core.management.base import CommandError

from generation.inputs import library
from generation.kinds.sampling import PRESETS, Sampling
from generation.kinds.text2img import Text2ImgParams
from generation.models import Job, LibraryModel
from generation.runtime.predictors import JobInput
from generation.runtime.sdxl import SDXLPredictor
from tests import model_files
from tests.conftest import ROOT
from tests.test_a1111 import Client
from tests.test_text2img import decode

BASE = {"prompt": "a lighthouse", "width": 64, "height": 64, "seed": 5}
V6 = "/api/v6/images/text2img"


@pytest.fixture
def fast_loras(transactional_db):
    folder = ROOT / "var" / "test-models"
    lightning = model_files.lora(folder / "lora-a", seed=1)
    call_command("addmodel", str(lightning), "--id", "lightning", "--kind", "lora", "--preset", "lightning")
    hyper = model_files.lora(folder / "lora-b", seed=2)
    call_command("addmodel", str(hyper), "--id", "hyper", "--kind", "lora", "--preset", "hyper-sd", "--steps", "2")


def sampling_of(meta: dict) -> dict:
    names = ("steps", "guidance_scale", "scheduler", "timestep_spacing", "eta", "sampling_from")
    return {name: meta.get(name) for name in names}


def test_a_fast_model_samples_as_its_family_does_unless_asked_otherwise_within_its_range(api, fast_loras):
    named = api.post(V6, {**BASE, "lora_model": "lightning"})
    assert named["status"] == "success", named
    assert sampling_of(named["meta"]) == {
        "steps": 4,
        "guidance_scale": 0.0,
        "scheduler": "EulerDiscreteScheduler",
        "timestep_spacing": "trailing",
        "eta": None,
        "sampling_from": "lightning",
    }
    assert named["meta"]["not_applied"] == []

    within = api.post(V6, {**BASE, "lora_model": "lightning", "num_inference_steps": 6, "guidance_scale": 1})
    assert (within["meta"]["steps"], within["meta"]["guidance_scale"], within["meta"]["not_applied"]) == (6, 1.0, [])

    beyond = api.post(V6, {**BASE, "lora_model": "lightning", "num_inference_steps": 30, "guidance_scale": 7})
    assert (beyond["meta"]["steps"], beyond["meta"]["guidance_scale"]) == (8, 1.0)
    reasons = {entry["field"]: entry["reason"] for entry in beyond["meta"]["not_applied"]}
    assert reasons == {
        "num_inference_steps": "lightning runs at most 8 steps; it ran that many.",
        "guidance_scale": "lightning takes guidance 0-1; it ran at 1.",
    }

    chosen = api.post(V6, {**BASE, "lora_model": "lightning", "scheduler": "DDIMScheduler"})
    assert chosen["meta"]["scheduler"] == "DDIMScheduler" and chosen["meta"]["steps"] == 4

    plain = api.post(V6, BASE)  # a model of no sampling of its own: the API's defaults
    assert sampling_of(plain["meta"])["steps"] == 30 and plain["meta"]["guidance_scale"] == 7.5
    assert "sampling_from" not in plain["meta"]


def test_guidance_at_most_one_runs_one_unet_call_per_step_at_trailing_timesteps(api, fast_loras, monkeypatch):
    """The Lightning job's parameters as the API resolved them, run by the predictor: 4 UNet calls of one
    latent each (no negative-prompt pass) at Euler's trailing timesteps; at guidance 7.5, two per call."""
    body = api.post(V6, {**BASE, "lora_model": "lightning", "instant_response": "yes"})
    params = Job.objects.get(pk=body["id"]).parameters
    params.loras = []  # the calls are counted, not the LoRA's look
    calls = []
    forward = UNet2DConditionModel.forward

    def counted(self, sample, timestep, *args, **kwargs):
        calls.append((sample.shape[0], int(timestep)))
        return forward(self, sample, timestep, *args, **kwargs)

    monkeypatch.setattr(UNet2DConditionModel, "forward", counted)
    predictor = SDXLPredictor(device="cpu")
    predictor.predict(JobInput(params))
    assert calls == [(1, 999), (1, 749), (1, 499), (1, 249)]

    calls.clear()
    predictor.predict(JobInput(Text2ImgParams(prompt="a lighthouse", width=64, height=64, steps=4, seed=5)))
    assert [latents for latents, _ in calls] == [2, 2, 2, 2]


def test_tcd_takes_the_models_eta_and_a_requests_own(api, fast_loras):
    hyper = api.post(V6, {**BASE, "lora_model": "hyper"})
    assert sampling_of(hyper["meta"]) == {
        "steps": 2,
        "guidance_scale": 0.0,
        "scheduler": "TCDScheduler",
        "timestep_spacing": "trailing",
        "eta": 0.3,
        "sampling_from": "hyper",
    }
    again = api.post(V6, {**BASE, "lora_model": "hyper", "eta": 0.3})
    other = api.post(V6, {**BASE, "lora_model": "hyper", "eta": 1})
    assert other["meta"]["eta"] == 1.0
    first, same, changed = (np.asarray(decode(body["output"][0]), dtype=int) for body in (hyper, again, other))
    assert np.array_equal(first, same) and np.abs(first - changed).mean() > 0.5  # eta reaches TCD's steps


def test_the_realtime_endpoints_run_the_deployments_fast_model(api, fast_loras, settings):
    settings.REALTIME_MODEL = "lightning"
    for path in ("/api/v6/realtime/text2img", "/api/v1/enterprise/realtime/text2img"):
        body = api.post(path, BASE)
        assert body["status"] == "success", body
        assert body["meta"]["lora_model"] == "lightning" and body["meta"]["sampling_from"] == "lightning"
        assert (body["meta"]["steps"], body["meta"]["guidance_scale"]) == (4, 0.0)
    assert api.post(V6, BASE)["meta"]["steps"] == 30  # the other paths are left alone


def test_openai_quality_scales_a_fast_default_models_steps(api, transactional_db):
    default = library.default_checkpoint()
    default.sampling = PRESETS["lightning"].to_dict()
    default.save()
    steps = {}
    for quality in ("low", "standard", "high"):
        body = {"prompt": "a lighthouse", "size": "256x256", "quality": quality}
        api.post("/v1/images/generations", body, headers={"Authorization": f"Bearer {api.key}"})
        steps[quality] = Job.objects.order_by("-id").first().parameters.steps
    assert steps == {"low": 2, "standard": 4, "high": 6}
    assert api.post("/api/v3/text2img", BASE)["meta"]["steps"] == 4  # v3 runs the default model: its sampling


def test_addmodel_sets_a_models_sampling_and_licence_and_refuses_nonsense(transactional_db):
    lora = model_files.lora(ROOT / "var" / "test-models" / "lora-a", seed=1)
    call_command(
        "addmodel", str(lora), "--id", "turbo-ish", "--kind", "lora", "--preset", "turbo", "--max-steps", "2",
        "--license", "SAI non-commercial",
    )  # fmt: skip
    entry = LibraryModel.objects.get(public_id="turbo-ish")
    assert entry.license == "SAI non-commercial"
    assert entry.sampling == {**PRESETS["turbo"].to_dict(), "max_steps": 2}
    with pytest.raises(CommandError, match="default steps are more than the most steps"):
        call_command("addmodel", str(lora), "--id", "bad", "--kind", "lora", "--steps", "9", "--max-steps", "4")
    with pytest.raises(CommandError, match="Unknown scheduler"):
        call_command("addmodel", str(lora), "--id", "bad", "--kind", "lora", "--scheduler", "Nope")


def test_an_a1111_client_gets_a_fast_models_steps_and_keeps_its_trailing_euler(api, fast_loras):
    """SillyTavern-like: Euler by name, a <lora:...> tag, no steps or cfg_scale: the Lightning LoRA's 4
    steps at guidance 0, trailing; its 20 steps sent are clamped to 8 and the info says so."""
    a1111 = Client(api.base_url, api.key)
    body = {"prompt": "a lighthouse <lora:lightning:1>", "width": 64, "height": 64, "sampler_name": "Euler"}
    assert a1111.post("/txt2img", body).status_code == 200
    params = Job.objects.order_by("-id").first().parameters
    assert (params.steps, params.guidance_scale, params.scheduler) == (4, 0.0, "EulerDiscreteScheduler")
    assert params.scheduler_options["timestep_spacing"] == "trailing"
    answer = a1111.post("/txt2img", {**body, "steps": 20, "cfg_scale": 7})
    info = json.loads(answer.json()["info"])
    assert info["steps"] == 8 and info["cfg_scale"] == 1.0
    assert {entry["field"] for entry in info["not_applied"]} >= {"num_inference_steps", "guidance_scale"}


def test_a_models_one_sided_guidance_range_clamps_and_says_so():
    """A model that sets only its lowest guidance (an admin's JSON): a request below it runs at it."""
    params = Text2ImgParams(prompt="a lighthouse", guidance_scale=0.5, asked=["guidance_scale"])
    params.apply_sampling(Sampling.from_dict({"min_guidance": 1}), "cfg-distilled")
    assert params.guidance_scale == 1.0
    assert params.not_applied == [
        {"field": "guidance_scale", "reason": "cfg-distilled takes guidance 1-20; it ran at 1."}
    ]
    with pytest.raises(ValueError, match="steps must be a number"):
        Sampling.from_dict({"steps": "4"})
