"""Every documented field does what the documentation says, or the answer names it in meta.not_applied."""

import numpy as np
import pytest
from django.conf import settings

from tests.conftest import png_bytes
from tests.http_server import Route
from tests.test_text2img import decode

TINY = {"prompt": "a lighthouse", "width": 64, "height": 64, "num_inference_steps": 2, "seed": 11}


def pixels(body) -> np.ndarray:
    assert body["status"] == "success", body
    return np.asarray(decode(body["output"][0]).convert("RGB"), dtype=np.int16)


def not_applied(body) -> dict:
    return {entry["field"]: entry["reason"] for entry in body["meta"]["not_applied"]}


def test_upscale_gives_a_larger_image_in_the_same_job(api):
    for value, factor in (("yes", 2), (3, 3), ("no", 1)):
        body = api.post("/api/v3/text2img", {**TINY, "upscale": value})
        assert decode(body["output"][0]).size == (64 * factor, 64 * factor)
        assert (body["meta"]["W"], body["meta"]["H"]) == (64 * factor, 64 * factor)
        assert not_applied(body) == {}


def test_enhance_prompt_adds_the_configured_words_to_meta_prompt(api):
    body = api.post("/api/v3/text2img", {**TINY, "enhance_prompt": "yes"})
    assert body["meta"]["prompt"] == f"a lighthouse, {settings.PROMPT_ENHANCEMENT}"
    assert api.post("/api/v3/text2img", {**TINY, "enhance_prompt": "no"})["meta"]["prompt"] == "a lighthouse"


@pytest.mark.parametrize("field", [{"self_attention": "yes"}, {"clip_skip": 1}])
def test_guidance_fields_change_the_image_against_the_same_seed(api, field):
    plain = pixels(api.post("/api/v3/text2img", TINY))
    changed = api.post("/api/v3/text2img", {**TINY, **field})
    assert np.abs(pixels(changed) - plain).mean() > 0.5
    assert not_applied(changed) == {}
    # and nothing leaks into the next job: the plain request gives the plain image again
    assert np.abs(pixels(api.post("/api/v3/text2img", TINY)) - plain).max() <= 1


def test_steps_is_an_alias_of_num_inference_steps(api):
    body = api.post("/api/v6/images/text2img", {**TINY, "num_inference_steps": None, "steps": "3"})
    assert body["meta"]["steps"] == 3


def test_fields_not_applied_here_are_named_with_a_reason(api):
    """On v3, which the hosted service documents as single-model, the model fields are listed too."""
    body = api.post(
        "/api/v3/text2img",
        {
            **TINY,
            "tomesd": "yes",
            "panorama": "yes",
            "multi_lingual": "yes",
            "face_enhance": True,
            "model_id": "juggernaut-xl",
            "lora_model": "more_details",
            "lora_strength": "0.7",
            "embeddings_model": "neg",
            "vae": "sdxl-vae-fp16-fix",
            "temp": "yes",
        },
    )
    skipped = not_applied(body)
    assert set(skipped) == {
        "tomesd",
        "panorama",
        "multi_lingual",
        "face_enhance",
        "model_id",
        "lora_model",
        "lora_strength",
        "embeddings_model",
        "vae",
        "temp",
    }
    assert all(isinstance(reason, str) and reason for reason in skipped.values())
    assert decode(body["output"][0]).size == (64, 64)  # panorama: the size asked for


def test_fields_that_ask_for_nothing_or_for_what_is_served_are_not_listed(api):
    served = api.post("/api/v3/text2img", TINY)["meta"]
    body = api.post(
        "/api/v3/text2img",
        {
            **TINY,
            "tomesd": "no",
            "panorama": "no",
            "multi_lingual": "no",
            "face_enhance": "no",
            "temp": "no",
            "model_id": served["model"],
            "vae": served["vae"],
            "lora_model": None,
            "embeddings_model": "",
        },
    )
    assert body["meta"]["not_applied"] == []


def test_super_resolution_names_what_it_did_not_apply(api, http_server):
    http_server.routes["/small.png"] = Route(body=png_bytes((40, 30)))
    url = f"{http_server.url}/small.png"
    body = api.post(
        "/api/v3/super_resolution", {"url": url, "scale": 2, "face_enhance": "yes", "model_id": "ultra_resolution"}
    )
    assert isinstance(body["output"], str)
    assert {entry["field"] for entry in body["meta"]["not_applied"]} == {"face_enhance", "model_id"}
    plain = api.post("/api/v3/super_resolution", {"url": url, "scale": 2, "model_id": "RealESRGAN_x2plus"})
    assert "not_applied" not in plain.get("meta", {})  # nothing listed when everything asked for was applied


def test_the_paths_that_choose_models_list_only_what_they_do_not_apply(api):
    body = api.post("/api/v6/images/text2img", {**TINY, "tomesd": "yes", "temp": "yes", "lora_model": None})
    assert set(not_applied(body)) == {"tomesd", "temp"}
