"""Schedulers: diffusers names and A1111 labels, options, and no leaking from one job to the next."""

import pytest

from generation.kinds import schedulers
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
    def resolved(name, explicit=None):
        sampling = schedulers.resolve(name, explicit)
        return sampling.scheduler, sampling.options

    assert resolved("DPM++ 2M SDE Karras") == (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True},
    )
    assert resolved(
        "DPMSolverMultistepScheduler", {"use_karras_sigmas": True, "algorithm_type": "sde-dpmsolver++"}
    ) == (
        "DPMSolverMultistepScheduler",
        {"use_karras_sigmas": True, "algorithm_type": "sde-dpmsolver++"},
    )
    assert resolved("euler_a") == resolved("k_euler_a") == ("EulerAncestralDiscreteScheduler", {})
    assert resolved("Euler Exponential") == ("EulerDiscreteScheduler", {"use_exponential_sigmas": True})
    assert resolved("Euler Exponential", {"use_karras_sigmas": True}) == (  # one sigma schedule at a time
        "EulerDiscreteScheduler",
        {"use_karras_sigmas": True},
    )
    assert resolved("DPM++ 2M SGM Uniform") == ("DPMSolverMultistepScheduler", {"timestep_spacing": "trailing"})
    assert schedulers.resolve("Nope") is None


def test_what_a_scheduler_has_no_use_for_is_named_not_dropped():
    ddim = schedulers.resolve("DDIM", {"use_karras_sigmas": True})
    assert ddim.options == {}
    assert ddim.not_applied == [
        {
            "field": "use_karras_sigmas",
            "reason": "use_karras_sigmas is not available with DDIMScheduler; it was not applied",
        }
    ]
    euler_a = schedulers.a1111("Euler a", "Karras", "Euler")  # Open WebUI's choice: Euler a has no Karras sigmas
    assert (euler_a.scheduler, euler_a.options) == ("EulerAncestralDiscreteScheduler", {})
    assert euler_a.not_applied[0]["field"] == "scheduler" and "Karras" in euler_a.not_applied[0]["reason"]


@pytest.mark.parametrize("sampler", [sampler.name for sampler in schedulers.SAMPLERS])
def test_every_a1111_sampler_goes_with_every_schedule_type(sampler):
    for schedule in schedulers.SCHEDULES:
        sampling = schedulers.a1111(sampler, schedule.label, "Euler")
        assert sampling.scheduler in schedulers.DIFFUSERS_SCHEDULERS
        assert schedulers.a1111(sampler, schedule.name, "Euler").options == sampling.options
        assert set(sampling.options) <= schedulers.ACCEPTED_OPTIONS[sampling.scheduler]
        combined = schedulers.a1111(f"{sampler} {schedule.label}", None, "Euler")  # the older combined names
        if schedule.name != "automatic":
            assert combined.options == sampling.options, (sampler, schedule.name)


def test_automatic_is_the_samplers_own_schedule_as_in_a1111():
    assert schedulers.a1111("DPM++ 2M", "Automatic", "Euler").options == {"use_karras_sigmas": True}
    assert schedulers.a1111("DPM++ 2M SDE", None, "Euler").options == {
        "algorithm_type": "sde-dpmsolver++",
        "use_exponential_sigmas": True,
    }
    assert schedulers.a1111(None, None, "Euler").scheduler == "EulerDiscreteScheduler"
    assert schedulers.a1111("Magic", None, "Euler") is None and schedulers.a1111("Euler", "Magic", "Euler") is None


def test_the_option_tables_match_diffusers():
    """What the web tier believes each class takes is what diffusers' signatures say (custom timesteps
    for align-your-steps included)."""
    import inspect

    import diffusers

    for name, accepted in schedulers.ACCEPTED_OPTIONS.items():
        cls = getattr(diffusers, name)
        init = set(inspect.signature(cls.__init__).parameters)
        assert accepted - {schedulers.AYS} <= init, name
        takes_timesteps = "timesteps" in inspect.signature(cls.set_timesteps).parameters
        assert (schedulers.AYS in accepted) == takes_timesteps, name
        for option in ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "timestep_spacing"):
            assert (option in accepted) == (option in init), (name, option)


def test_align_your_steps_timesteps():
    assert schedulers.ays_timesteps(10) == [999, 845, 730, 587, 443, 310, 193, 116, 53, 13]
    assert schedulers.ays_timesteps(1) == [999]
    for steps in (2, 4, 7, 20, 50):
        timesteps = schedulers.ays_timesteps(steps)
        assert len(timesteps) == steps and timesteps[0] == 999 and timesteps[-1] == 13
        assert all(a > b for a, b in zip(timesteps, timesteps[1:]))


def test_scheduler_options_reach_the_scheduler(api):
    request = {"prompt": "x", "width": 64, "height": 64, "num_inference_steps": 3, "seed": 8}
    request["scheduler"] = "DPMSolverMultistepScheduler"
    plain = api.post("/api/v3/text2img", request)
    options = [
        {"use_karras_sigmas": "yes"},
        {"algorithm_type": "dpmsolver+++"},
        {"use_exponential_sigmas": "yes"},
        {"use_beta_sigmas": "yes"},
        {"timestep_spacing": "trailing"},
        {"timesteps_preset": "align_your_steps"},
    ]
    answers = [api.post("/api/v3/text2img", {**request, **option}) for option in options]
    assert (answers[0]["meta"]["use_karras_sigmas"], answers[1]["meta"]["algorithm_type"]) == ("yes", "sde-dpmsolver++")
    assert answers[5]["meta"]["timesteps_preset"] == "align_your_steps"
    assert all(body["meta"]["not_applied"] == [] for body in answers)
    images = [download(body["output"][0]) for body in (plain, *answers)]
    assert len(set(images)) == len(images)  # each option changed the image
    ddim = api.post("/api/v3/text2img", {**request, "scheduler": "DDIM", "use_karras_sigmas": "yes"})
    assert [entry["field"] for entry in ddim["meta"]["not_applied"]] == ["use_karras_sigmas"]
    refused = api.post("/api/v3/text2img", {**request, "timestep_spacing": "sideways"})
    assert refused["message"]["timestep_spacing"] == [
        "The timestep spacing must be one of leading, linspace, trailing."
    ]


def test_a_jobs_scheduler_does_not_leak_into_the_next(api):
    request = {"prompt": "lighthouse", "width": 64, "height": 64, "num_inference_steps": 3, "seed": 11}
    before = api.post("/api/v3/text2img", request)
    api.post("/api/v3/text2img", {**request, "scheduler": "Euler a"})
    after = api.post("/api/v3/text2img", request)
    assert after["meta"]["scheduler"] == "UniPCMultistepScheduler"
    assert download(before["output"][0]) == download(after["output"][0])
