"""The one map between request fields and job parameters: what a job was made with, written back as a
request (answers' meta, "run again"), asks for exactly the same job."""

import base64

import pytest

from generation import kinds
from tests.conftest import png_bytes

IMAGE = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
IMAGES = {"init_image": IMAGE, "mask_image": IMAGE, "url": IMAGE, "image": IMAGE}

REQUESTS = [
    ("text2img", {"prompt": "a lighthouse", "seed": 5}),
    (
        "text2img",
        {
            "prompt": "a lighthouse, ink",
            "negative_prompt": "blurry",
            "width": "640",
            "height": 384,
            "samples": 2,
            "steps": 12,
            "guidance_scale": "6.5",
            "seed": 42,
            "scheduler": "DPM++ 2M SDE Karras",
            "clip_skip": 2,
            "self_attention": "yes",
            "upscale": 3,
            "output_format": "jpeg",
            "base64": "yes",
            "safety_checker": True,
            "model_id": "juggernaut",
            "lora_model": "ink-style, film_grain",
            "lora_strength": "0.7,0.123456789",
            "embeddings_model": "myemb",
            "vae": "other-vae",
        },
    ),
    ("text2img", {"prompt": "x", "scheduler": "DPMSolverMultistepScheduler", "algorithm_type": "dpmsolver+++"}),
    ("text2img", {"prompt": "x", "scheduler": "Euler", "use_karras_sigmas": "no", "upscale": "yes"}),
    (
        "text2img",
        {
            "prompt": "x",
            "scheduler": "Euler SGM Uniform",
            "use_beta_sigmas": "yes",
            "timesteps_preset": "align_your_steps",
        },
    ),
    ("text2img", {"prompt": "x", "scheduler": "DPM++ 3M SDE", "solver_type": "heun", "use_exponential_sigmas": "yes"}),
    (
        "text2img",
        {
            "prompt": "x",
            "width": 64,
            "height": 128,
            "enable_hr": "yes",
            "hr_scale": 1.5,
            "hr_upscaler": "Lanczos",
            "hr_second_pass_steps": 5,
            "denoising_strength": 0.4,
        },
    ),
    ("img2img", {"prompt": "a harbour", "strength": 0.35, "num_inference_steps": 9, "lora_model": "ink-style"}),
    ("img2img", {"prompt": "a harbour", "prompt_strength": "0.2", "width": 128, "height": 64}),
    ("inpaint", {"prompt": "a sofa", "seed": 9, "embeddings_model": "a,b", "vae": "v"}),
    ("super_resolution", {"scale": 2, "model_id": "RealESRGAN_x2plus"}),
    ("removebg_mask", {"only_mask": "yes", "post_process_mask": "yes", "seed": 3}),
    ("img_mixer", {"prompt": "a poster", "init_image": ["https://example.com/a.png", "https://example.com/b.png"]}),
    ("outpaint", {"prompt": "a wide beach", "width": 1440, "height": 640, "overlap_width": 12, "steps": 40}),
    (
        "controlnet",
        {"prompt": "a house", "controlnet_model": "canny", "control_image": "https://example.com/edges.png"},
    ),
    (
        "controlnet",
        {
            "prompt": "a house",
            "controlnet_model": "canny,tile",
            "controlnet_type": "canny,tile",
            "controlnet_conditioning_scale": "0.5,1.5",
            "auto_hint": "no",
            "guess_mode": "yes",
            "strength": 0.3,
            "control_image": ["https://example.com/a.png", "https://example.com/b.png"],
            "lora_model": "ink-style",
        },
    ),
]


def params_of(kind: str, body: dict):
    serializer = kinds.serializer(kind)(data={**IMAGES, **body}, context={"model_library": True})
    assert serializer.is_valid(), serializer.errors
    return serializer.validated_data["params"]


@pytest.mark.parametrize(("kind", "body"), REQUESTS)
def test_a_jobs_parameters_written_back_as_a_request_give_the_same_parameters(kind, body):
    params = params_of(kind, body)
    again = params_of(kind, params.to_request())
    assert again == params


def test_the_request_names_are_the_ones_clients_send():
    written = params_of(*REQUESTS[1]).to_request()
    assert written["model_id"] == "juggernaut"
    assert (written["lora_model"], written["lora_strength"]) == ("ink-style,film_grain", "0.7,0.123456789")
    assert (written["embeddings_model"], written["vae"], written["num_inference_steps"]) == ("myemb", "other-vae", 12)
    assert (written["scheduler"], written["use_karras_sigmas"], written["algorithm_type"]) == (
        "DPMSolverMultistepScheduler",
        "yes",
        "sde-dpmsolver++",
    )
    assert "steps" not in written and "loras" not in written and "checkpoint" not in written
    assert params_of("super_resolution", {"model_id": "RealESRGAN_x2plus"}).to_request()["model_id"] == (
        "RealESRGAN_x2plus"
    )
