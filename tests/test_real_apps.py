"""The real apps on their default settings: their call sequences and bodies, replayed as their source
sends them (SillyTavern's Stable Diffusion extension and its server endpoint, Open WebUI's images router,
LibreChat's DALL-E 3 and OpenAI image tools), get images, and the fields those apps read are there.

Sizes are what the apps send (512x512, 1024x1024); the test account's plan caps the side at 128 px, so
the tiny model makes them quickly (the cap keeps their shape)."""

import base64
import io
import json

import numpy as np
import pytest
import requests
from PIL import Image

from billing import credits
from billing.models import Account, Plan
from generation.models import Job
from tests.conftest import download

SMALL_SIDE = 128
ST_NEGATIVE = (
    "lowres, bad anatomy, bad hands, text, error, cropped, worst quality, low quality, normal quality, jpeg "
    "artifacts, signature, watermark, username, blurry"
)


@pytest.fixture
def app_api(api, account):
    """The test account on a plan whose largest side is 128 px."""
    plan = Plan.objects.create(slug="small", name="Small", monthly_credits=1000, max_resolution=SMALL_SIDE)
    Account.objects.filter(user=account[0]).update(plan=plan, balance=1000)
    return api


def auth(api):
    return ("any", api.key)


def picture(encoded: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(encoded)))
    image.load()
    return image


def sillytavern_body(api, **settings) -> dict:
    """What SillyTavern's extension sends on its defaults (sampler DDIM, schedule type normal, 20 steps,
    CFG 7, 512x512, hires off but its fields sent), with the server endpoint's `url` and `auth` left in the
    body it forwards."""
    body = {
        "url": api.base_url,
        "auth": f"any:{api.key}",
        "prompt": "best quality, absurdres, aesthetic, a lighthouse",
        "negative_prompt": ST_NEGATIVE,
        "sampler_name": "DDIM",
        "scheduler": "normal",
        "steps": 20,
        "cfg_scale": 7,
        "width": 512,
        "height": 512,
        "restore_faces": False,
        "enable_hr": False,
        "hr_upscaler": "Latent",
        "hr_scale": 2.0,
        "hr_additional_modules": [],
        "denoising_strength": 0.7,
        "hr_second_pass_steps": 0,
        "override_settings": {"CLIP_stop_at_last_layers": 1},
        "override_settings_restore_afterwards": True,
        "clip_skip": 1,
        "save_images": True,
        "send_images": True,
        "do_not_save_grid": False,
        "do_not_save_samples": False,
    }
    return {**body, **settings}


def test_sillytavern_connects_lists_and_generates_on_its_defaults(app_api):
    base, login = app_api.base_url + "/sdapi/v1", auth(app_api)
    assert requests.get(base + "/options", auth=login, timeout=30).ok  # "Connect": its ping
    names = {
        path: [entry["name"] for entry in requests.get(base + path, auth=login, timeout=30).json()]
        for path in ("/samplers", "/schedulers", "/upscalers", "/latent-upscale-modes")
    }
    assert "DDIM" in names["/samplers"] and "normal" in names["/schedulers"]
    upscalers = names["/upscalers"]
    upscalers[1:1] = names["/latent-upscale-modes"]  # 0 = None, then the latent ones, then the others
    assert upscalers[:2] == ["None", "Latent"]
    titles = [model["title"] for model in requests.get(base + "/sd-models", auth=login, timeout=30).json()]
    assert requests.get(base + "/sd-vae", auth=login, timeout=30).json() == []
    chosen = requests.post(base + "/options", json={"sd_model_checkpoint": titles[0]}, auth=login, timeout=30)
    assert chosen.ok and chosen.json() is None  # its set-model parses the answer
    progress = requests.get(base + "/progress", auth=login, timeout=30).json()
    assert progress["progress"] == 0.0 and progress["state"]["job_count"] == 0  # what its wait loop reads
    assert "forge_preset" not in requests.get(base + "/options", auth=login, timeout=30).json()

    answer = requests.post(base + "/txt2img", json=sillytavern_body(app_api), auth=login, timeout=330)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert picture(body["images"][0]).size == (SMALL_SIDE, SMALL_SIDE)  # what it shows: images[0]
    assert "auth" not in body["parameters"] and "url" not in body["parameters"]  # its key is not echoed
    info = json.loads(body["info"])
    assert (info["sampler_name"], info["scheduler"], info["steps"], info["cfg_scale"]) == ("DDIM", "normal", 20, 7)
    assert info["not_applied"] == []
    job = Job.objects.get(pk=info["job_id"])
    assert (job.parameters.scheduler, job.parameters.scheduler_options) == (
        "DDIMScheduler",
        {"timestep_spacing": "linspace"},  # "normal": timesteps evenly spaced over the whole range
    )


def test_sillytavern_with_hires_fix_gets_hr_scale_times_the_size(app_api, account):
    base, login = app_api.base_url + "/sdapi/v1", auth(app_api)
    small = {"width": 64, "height": 64, "steps": 8, "seed": 7}
    plain = requests.post(base + "/txt2img", json=sillytavern_body(app_api, **small), auth=login, timeout=330)
    before = credits.account_for(account[0]).balance
    hires = requests.post(
        base + "/txt2img", json=sillytavern_body(app_api, **small, enable_hr=True), auth=login, timeout=330
    )
    assert hires.status_code == 200, hires.text
    image = picture(hires.json()["images"][0])
    assert image.size == (128, 128)  # hr_scale 2 on 64x64
    upscaled = picture(plain.json()["images"][0]).convert("RGB").resize((128, 128), Image.LANCZOS)
    difference = np.abs(np.asarray(image.convert("RGB"), np.int16) - np.asarray(upscaled, np.int16)).mean()
    assert difference > 5  # repainted at the larger size, not merely resized
    info = json.loads(hires.json()["info"])
    assert info["extra_generation_params"]["Hires upscaler"] == "Latent"
    assert "Hires resize: 128x128" in info["infotexts"][0] and "Denoising strength: 0.7" in info["infotexts"][0]
    assert before - credits.account_for(account[0]).balance > 1  # the second pass is priced as work


def test_open_webui_automatic1111_engine_with_euler_a_and_karras(app_api):
    """Open WebUI's A1111 engine: its settings check, the model switch (GET options, POST them back), then
    txt2img with its defaults (512x512, 50 steps) and the admin's parameters `Euler a` + `Karras`."""
    base, login = app_api.base_url + "/sdapi/v1", auth(app_api)
    options = requests.get(base + "/options", auth=login, timeout=30).json()
    models = requests.get(base + "/sd-models", auth=login, timeout=30).json()
    options["sd_model_checkpoint"] = models[0]["title"]
    assert requests.post(base + "/options", json=options, auth=login, timeout=30).status_code == 200
    body = {"prompt": "a lighthouse", "batch_size": 1, "width": 512, "height": 512, "steps": 50}
    answer = requests.post(
        base + "/txt2img", json={**body, "sampler_name": "Euler a", "scheduler": "Karras"}, auth=login, timeout=330
    )
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["images"]) == 1 and picture(answer.json()["images"][0]).format == "PNG"
    info = json.loads(answer.json()["info"])
    assert (info["sampler_name"], info["scheduler"]) == ("Euler a", "Karras")
    assert [entry["field"] for entry in info["not_applied"]] == ["scheduler"]  # Euler a has no Karras sigmas
    assert "Karras" in info["not_applied"][0]["reason"]


def test_open_webui_openai_engine_on_its_default_models(app_api):
    """dall-e-2 (its default) with `response_format: b64_json`; gpt-image-1 without one (it reads
    either)."""
    dalle = app_api.post_raw(
        "/v1/images/generations",
        json={"model": "dall-e-2", "prompt": "a fox", "n": 1, "size": "512x512", "response_format": "b64_json"},
        headers={"Authorization": f"Bearer {app_api.key}"},
    )
    assert dalle.status_code == 200, dalle.text
    assert picture(dalle.json()["data"][0]["b64_json"]).size == (SMALL_SIDE, SMALL_SIDE)
    gpt_image = app_api.post_raw(
        "/v1/images/generations",
        json={"model": "gpt-image-1", "prompt": "a fox", "n": 1, "size": "512x512"},
        headers={"Authorization": f"Bearer {app_api.key}"},
    )
    assert gpt_image.status_code == 200 and "b64_json" in gpt_image.json()["data"][0]


def test_librechat_dalle3_tool_reads_a_url(app_api):
    """LibreChat's DALL-E 3 tool sends no response_format and reads `data[0].url`, then downloads it and
    takes the file's extension from its name."""
    answer = app_api.post_raw(
        "/v1/images/generations",
        json={
            "model": "dall-e-3",
            "quality": "standard",
            "style": "vivid",
            "size": "1024x1792",
            "prompt": "a lighthouse at dusk",
            "n": 1,
        },
        headers={"Authorization": f"Bearer {app_api.key}"},
    )
    assert answer.status_code == 200, answer.text
    url = answer.json()["data"][0]["url"]
    assert url.endswith(".png") and "b64_json" not in answer.json()["data"][0]
    assert Image.open(io.BytesIO(download(url))).size == (72, SMALL_SIDE)  # 1024x1792 in 128, its shape kept


def test_librechat_gpt_image_tool_may_ask_for_ten(app_api):
    answer = app_api.post_raw(
        "/v1/images/generations",
        json={"model": "gpt-image-1", "prompt": "a lighthouse", "n": 10, "quality": "low", "size": "auto"},
        headers={"Authorization": f"Bearer {app_api.key}"},
    )
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["data"]) == 4  # the plan's max_samples
    assert all("b64_json" in image for image in answer.json()["data"])
