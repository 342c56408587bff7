"""Request bodies as real v3 clients send them, and the exact shapes and types they read back."""

import pytest

from tests.test_text2img import META_KEYS

CASES = [
    (
        "/api/v3/text2img",
        {
            "prompt": "a",
            "width": "64",
            "height": "64",
            "samples": "1",
            "num_inference_steps": "1",
            "guidance_scale": "7.5",
            "seed": "null",
        },
        {},
    ),
    (
        "/api/v3/text2img",
        {
            "prompt": "b",
            "width": 64,
            "height": 64,
            "samples": "",
            "num_inference_steps": "",
            "negative_prompt": None,
            "seed": "",
            "safety_checker": "no",
            "enhance_prompt": "yes",
            "lora_model": None,
            "tomesd": "yes",
            "embeddings_model": None,
            "multi_lingual": "no",
            "panorama": "no",
            "self_attention": "no",
            "upscale": "no",
            "webhook": None,
            "track_id": None,
            "model_id": "sdxl",
        },
        {"steps": 30},
    ),
    (
        "/api/v3/text2img",
        {"prompt": "c", "width": "800", "height": "600", "num_inference_steps": 80, "guidance_scale": "7.5", "seed": 5},
        {"W": 800, "H": 600, "steps": 50},
    ),
    (
        "/api/v3/img2img",
        {
            "prompt": "d",
            "init_image": "{image}",
            "prompt_strength": "0.5",
            "samples": "null",
            "num_inference_steps": "2",
            "width": "null",
            "height": "",
        },
        {"W": 64, "H": 64},
    ),
    (
        "/api/v3/inpaint",
        {
            "prompt": "e",
            "init_image": "{image}",
            "mask_image": "{image}",
            "strength": "0.9",
            "num_inference_steps": "2",
            "guidance_scale": 30,
        },
        {"guidance_scale": 20.0},
    ),
    (
        "/api/v3/super_resolution",
        {
            "url": "{image}",
            "scale": "2",
            "face_enhance": "false",
            "model_id": "RealESRGAN_x4plus",
            "webhook": None,
            "track_id": None,
        },
        None,
    ),
    ("/api/v3/super_resolution", {"url": "{image}", "scale": 3, "face_enhance": False}, None),
]


@pytest.mark.parametrize("path, body, expected_meta", CASES)
def test_real_client_bodies(api, image_url, path, body, expected_meta):
    body = {key: (value.format(image=image_url) if isinstance(value, str) else value) for key, value in body.items()}
    answer = api.post(path, body)  # waits for the job's end, however long 800x600 at 50 steps takes here

    assert answer["status"] == "success", answer
    assert type(answer["id"]) is int
    assert type(answer["generationTime"]) is float
    if expected_meta is None:  # super_resolution: one URL string
        assert type(answer["output"]) is str and answer["output"].startswith("http")
        return
    assert type(answer["output"]) is list and all(url.startswith("http") for url in answer["output"])
    meta = answer["meta"]
    assert set(meta) >= META_KEYS
    assert all(value is not None for value in meta.values()), meta
    for key in ("H", "W", "n_samples", "seed", "steps"):
        assert type(meta[key]) is int, key
    assert type(meta["guidance_scale"]) is float
    assert type(meta["negative_prompt"]) is str
    assert {key: meta[key] for key in expected_meta} == expected_meta
    assert answer == api.post(f"/api/v3/fetch/{answer['id']}")  # fetch returns the same body
