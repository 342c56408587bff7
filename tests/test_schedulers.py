"""Schedulers: diffusers names and A1111 labels, options, and no leaking from one job to the next."""

import pytest

from generation import schedulers
from tests.conftest import download


@pytest.mark.parametrize("name", schedulers.DIFFUSERS_SCHEDULERS)
def test_every_diffusers_scheduler_runs(api, name):
    body = api.post(
        "/api/v3/text2img", {"prompt": "x", "width": 64, "height": 64, "num_inference_steps": 2, "scheduler": name}
    )
    assert body["status"] == "success", body
    assert body["meta"]["scheduler"] == name


@pytest.mark.parametrize(
    "label, class_name",
    [
        ("DPM++ 2M Karras", "DPMSolverMultistepScheduler"),
        ("Euler a", "EulerAncestralDiscreteScheduler"),
        ("DPM++ 2M SDE Karras", "DPMSolverMultistepScheduler"),
        ("DPM2 a Karras", "KDPM2AncestralDiscreteScheduler"),
        ("Heun", "HeunDiscreteScheduler"),
        ("LMS", "LMSDiscreteScheduler"),
        ("DDIM", "DDIMScheduler"),
    ],
)
def test_a1111_labels(api, label, class_name):
    body = api.post(
        "/api/v3/text2img", {"prompt": "x", "width": 64, "height": 64, "num_inference_steps": 2, "scheduler": label}
    )
    assert body["status"] == "success", body
    assert body["meta"]["scheduler"] == class_name


def test_options_resolve():
    assert schedulers.resolve("DPM++ 2M SDE Karras") == (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True},
    )
    assert schedulers.resolve("DPMSolverMultistepScheduler", True, "dpmsolver+++") == (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True},
    )
    assert schedulers.resolve("euler_a") == ("EulerAncestralDiscreteScheduler", {})
    assert schedulers.resolve("Euler a", use_karras_sigmas=False) == (
        "EulerAncestralDiscreteScheduler",
        {"use_karras_sigmas": False},
    )
    assert schedulers.resolve("Nope") is None


def test_karras_and_algorithm_options_reach_the_scheduler(api):
    request = {"prompt": "x", "width": 64, "height": 64, "num_inference_steps": 3, "seed": 8}
    request["scheduler"] = "DPMSolverMultistepScheduler"
    plain = api.post("/api/v3/text2img", request)
    karras = api.post("/api/v3/text2img", {**request, "use_karras_sigmas": "yes"})
    sde = api.post("/api/v3/text2img", {**request, "algorithm_type": "dpmsolver+++"})
    assert (karras["meta"]["use_karras_sigmas"], sde["meta"]["algorithm_type"]) == ("yes", "sde-dpmsolver++")
    images = [download(body["output"][0]) for body in (plain, karras, sde)]
    assert len(set(images)) == 3  # each option changed the image


def test_a_jobs_scheduler_does_not_leak_into_the_next(api):
    request = {"prompt": "lighthouse", "width": 64, "height": 64, "num_inference_steps": 3, "seed": 11}
    before = api.post("/api/v3/text2img", request)
    api.post("/api/v3/text2img", {**request, "scheduler": "Euler a"})
    after = api.post("/api/v3/text2img", request)
    assert after["meta"]["scheduler"] == "UniPCMultistepScheduler"
    assert download(before["output"][0]) == download(after["output"][0])
