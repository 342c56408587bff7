"""POST /api/v3/text2img through real HTTP, Redis and a worker running the demo SDXL."""

import io

import pytest
from PIL import Image

from tests.conftest import download

META_KEYS = {
    "H",
    "W",
    "enable_attention_slicing",
    "file_prefix",
    "guidance_scale",
    "model",
    "n_samples",
    "negative_prompt",
    "outdir",
    "prompt",
    "revision",
    "safetychecker",
    "seed",
    "steps",
    "vae",
    "scheduler",
}

# The documented example body, as real clients send it: numbers as strings, nulls, unknown fields.
DOCUMENTED_BODY = {
    "prompt": "ultra realistic close up portrait ((beautiful pale cyberpunk female with heavy black eyeliner))",
    "negative_prompt": None,
    "width": "64",
    "height": "64",
    "samples": "1",
    "num_inference_steps": "2",
    "seed": None,
    "guidance_scale": "7.5",
    "safety_checker": "no",
    "enhance_prompt": "yes",
    "multi_lingual": "no",
    "panorama": "no",
    "self_attention": "no",
    "upscale": "no",
    "embeddings_model": None,
    "lora_model": None,
    "tomesd": "yes",
    "use_karras_sigmas": "yes",
    "vae": None,
    "lora_strength": None,
    "model_id": "sdxl",
    "webhook": None,
    "track_id": None,
}


def decode(url: str) -> Image.Image:
    return Image.open(io.BytesIO(download(url)))


def test_documented_example_body_returns_a_png(api):
    body = api.post("/api/v3/text2img", DOCUMENTED_BODY)

    assert body["status"] == "success", body
    assert isinstance(body["id"], int)
    assert isinstance(body["generationTime"], float)
    assert set(body["meta"]) >= META_KEYS
    assert all(value is not None for value in body["meta"].values())
    assert body["meta"]["negative_prompt"] == ""
    assert body["meta"]["W"] == 64 and body["meta"]["H"] == 64 and body["meta"]["steps"] == 2
    assert isinstance(body["meta"]["seed"], int)
    assert len(body["output"]) == 1 and body["output"][0].endswith("-0.png")
    assert body["output"][0].startswith("http://")
    image = decode(body["output"][0])
    assert image.format == "PNG" and image.size == (64, 64)


def test_same_seed_gives_the_same_image(api):
    request = {"prompt": "a red fox", "width": 64, "height": 64, "num_inference_steps": 2, "seed": 1234}
    first = api.post("/api/v3/text2img", request)
    second = api.post("/api/v3/text2img", request)
    other = api.post("/api/v3/text2img", {**request, "seed": 99})

    assert first["meta"]["seed"] == second["meta"]["seed"] == 1234
    assert download(first["output"][0]) == download(second["output"][0])
    assert download(first["output"][0]) != download(other["output"][0])


def test_samples_are_one_call_with_one_url_each(api):
    body = api.post(
        "/api/v3/text2img",
        {"prompt": "boats", "width": 64, "height": 64, "samples": "3", "num_inference_steps": 1, "seed": 7},
    )
    assert body["status"] == "success"
    assert body["meta"]["n_samples"] == 3
    assert [url.rsplit("-", 1)[1] for url in body["output"]] == ["0.png", "1.png", "2.png"]
    images = [download(url) for url in body["output"]]
    assert len(set(images)) == 3


@pytest.mark.parametrize(
    "sent, expected",
    [
        ({"width": "2000", "height": "10"}, {"W": 1024, "H": 64}),
        ({"width": "100", "height": "70.9"}, {"W": 96, "H": 64}),
        (
            {"samples": 9, "num_inference_steps": "80", "guidance_scale": "35"},
            {"n_samples": 4, "steps": 50, "guidance_scale": 20.0},
        ),
        ({"width": "", "height": "null", "num_inference_steps": None}, {"W": 512, "H": 512, "steps": 30}),
    ],
)
def test_out_of_range_values_are_clamped(api, sent, expected):
    body = api.post("/api/v3/text2img", {"prompt": "clamp me", "instant_response": "yes", **sent})
    assert body["status"] == "processing", body
    assert {key: body["meta"][key] for key in expected} == expected


def test_processing_then_fetch(api):
    body = api.post(
        "/api/v3/text2img",
        {"prompt": "a slow one", "width": 64, "height": 64, "num_inference_steps": 2, "instant_response": "yes"},
    )
    assert body["status"] == "processing"
    assert body["messege"] == body["message"] == "Try to fetch request after given estimated time"
    assert isinstance(body["eta"], float)
    assert body["fetch_result"].endswith(f"/api/v3/fetch/{body['id']}")
    assert body["fetch_result"].startswith("http://")
    assert body["output"] == [] and len(body["future_links"]) == 1

    done = api.wait_for(body["id"])
    assert done["status"] == "success"
    assert done["id"] == body["id"]
    assert done["output"] == body["future_links"]
    assert decode(done["output"][0]).size == (64, 64)


def test_bearer_header_works_without_body_key(api):
    response = api.post_raw(
        "/api/v3/text2img",
        json={"prompt": "bearer", "width": 64, "height": 64, "num_inference_steps": 1},
        headers={"Authorization": f"Bearer {api.key}"},
    )
    assert response.json()["status"] == "success"


def test_json_without_content_type_is_accepted(api):
    response = api.post_raw(
        "/api/v3/text2img",
        data=f'{{"key": "{api.key}", "prompt": "no header", "width": 64, "height": 64, "num_inference_steps": 1}}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.json()["status"] == "success"


def test_the_hires_fix_makes_a_larger_image_repainted_at_that_size(api):
    """A1111's hires fix on the hosted API's paths: made at 64x64, upscaled (in latent space, by a resizer
    or by a library upscaler), then repainted there; meta gives the final size and the fields ask again."""
    base = {"prompt": "a lighthouse", "width": 64, "height": 64, "num_inference_steps": 4, "seed": 3}
    plain = Image.open(io.BytesIO(download(api.post("/api/v6/images/text2img", base)["output"][0])))
    for upscaler in ("Latent", "Lanczos", "R-ESRGAN 4x+"):
        body = api.post("/api/v6/images/text2img", {**base, "enable_hr": "yes", "hr_upscaler": upscaler})
        assert body["status"] == "success", body
        image = Image.open(io.BytesIO(download(body["output"][0])))
        assert image.size == (128, 128) and (body["meta"]["W"], body["meta"]["H"]) == (128, 128)
        assert (
            body["meta"]["hr_upscaler"] == ("RealESRGAN_x4plus" if upscaler.startswith("R-") else upscaler)
            and body["meta"]["not_applied"] == []
        )
        resized = plain.convert("RGB").resize((128, 128), Image.LANCZOS).tobytes()
        assert image.convert("RGB").tobytes() != resized
    wide = api.post("/api/v6/images/text2img", {**base, "enable_hr": "yes", "hr_resize_x": 96, "hr_upscaler": "Magic"})
    assert (wide["meta"]["W"], wide["meta"]["H"]) == (96, 96)  # one side given: the shape kept
    assert [entry["field"] for entry in wide["meta"]["not_applied"]] == ["hr_upscaler"]
