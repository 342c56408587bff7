"""The AUTOMATIC1111 API front-end (`/sdapi/v1`): what SillyTavern, Open WebUI and chat bots send, with
HTTP Basic auth (the API key as the password), answered in A1111's shapes."""

import base64
import io
import json
import threading

import numpy as np
import pytest
import requests
from django.core.management import call_command
from PIL import Image

from accounts.models import ApiKey
from billing.models import Account
from generation.models import Job
from tests import model_files
from tests.conftest import ROOT, make_account, paused, step_until

TXT2IMG = {"prompt": "a lighthouse", "steps": 2, "width": 64, "height": 64, "seed": 11, "cfg_scale": 6}


class Client:
    def __init__(self, base_url: str, key: str):
        self.base_url, self.auth = base_url + "/sdapi/v1", ("sillytavern", key)

    def post(self, path: str, body: dict | None = None, **kwargs) -> requests.Response:
        return requests.post(self.base_url + path, json=body or {}, auth=kwargs.pop("auth", self.auth), timeout=330)

    def get(self, path: str) -> requests.Response:
        return requests.get(self.base_url + path, auth=self.auth, timeout=30)


@pytest.fixture
def a1111(api):
    return Client(api.base_url, api.key)


def pixels(answer: requests.Response, index: int = 0) -> np.ndarray:
    assert answer.status_code == 200, answer.text
    image = Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][index])))
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_txt2img_answers_images_parameters_and_infotexts(a1111):
    answer = a1111.post("/txt2img", {**TXT2IMG, "sampler_name": "DPM++ 2M", "scheduler": "Karras", "batch_size": 2})
    body = answer.json()
    assert answer.status_code == 200 and len(body["images"]) == 2 and pixels(answer).shape == (64, 64, 3)
    assert body["parameters"]["sampler_name"] == "DPM++ 2M" and body["parameters"]["batch_size"] == 2
    info = json.loads(body["info"])
    assert (info["seed"], info["all_seeds"], info["width"], info["height"]) == (11, [11, 12], 64, 64)
    assert (info["sampler_name"], info["cfg_scale"], info["steps"]) == ("DPM++ 2M", 6, 2)
    assert info["infotexts"][1] == (
        f"a lighthouse\nSteps: 2, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.0, Seed: 12, Size: 64x64, "
        f"Model: {info['sd_model_name']}"
    )
    job = Job.objects.get(pk=info["job_id"])
    assert job.parameters.scheduler == "DPMSolverMultistepScheduler"
    assert job.parameters.scheduler_options == {"use_karras_sigmas": True} and job.api_key_id
    same_seed = a1111.post("/txt2img", {**TXT2IMG, "sampler_name": "DPM++ 2M", "scheduler": "Karras"})
    assert np.abs(pixels(same_seed) - pixels(answer)).max() <= 2  # one image alone, the first of two
    script_args = {"alwayson_scripts": {"controlnet": {"args": [{"input_image": "AAAA" * 1000}]}}}
    tall = json.loads(
        a1111.post("/txt2img", {**TXT2IMG, "width": 832, "height": 1216, "send_images": False}).json()["info"]
    )
    assert (tall["width"], tall["height"]) == (696, 1024)  # SDXL's portrait size, fitted keeping its shape
    no_images = a1111.post("/txt2img", {**TXT2IMG, "send_images": False, **script_args}).json()
    assert "alwayson_scripts" not in no_images["parameters"]  # script arguments are not echoed
    assert no_images["images"] == [] and json.loads(no_images["info"])["all_seeds"] == [11]


def test_auth_and_errors_in_a1111s_shape(a1111, account):
    refused = requests.post(a1111.base_url + "/txt2img", json=TXT2IMG, timeout=30)
    assert refused.status_code == 401 and refused.json() == {"detail": "Incorrect credentials"}
    assert refused.headers["WWW-Authenticate"].startswith("Basic")
    assert a1111.post("/txt2img", TXT2IMG, auth=("x", "wrong")).status_code == 401
    bearer = requests.get(
        a1111.base_url + "/samplers", headers={"Authorization": f"Bearer {a1111.auth[1]}"}, timeout=30
    )
    assert bearer.status_code == 200
    unknown = a1111.post("/txt2img", {**TXT2IMG, "sampler_name": "Magic"})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "sampler_name"]
    assert "DPM++ 2M" in unknown.json()["detail"][0]["msg"] and "Euler a" in unknown.json()["detail"][0]["msg"]
    bad_schedule = a1111.post("/txt2img", {**TXT2IMG, "scheduler": "Hyperbolic"})
    assert bad_schedule.status_code == 422 and "Polyexponential" in bad_schedule.json()["detail"][0]["msg"]
    too_many = a1111.post("/txt2img", {**TXT2IMG, "batch_size": 3, "n_iter": 2})
    assert too_many.status_code == 422
    assert requests.get(a1111.base_url + "/nothing", timeout=30).json() == {"detail": "Not Found"}
    user, _ = account
    Account.objects.filter(user=user).update(balance=0)
    broke = a1111.post("/txt2img", TXT2IMG)
    assert broke.status_code == 402 and broke.json()["detail"].startswith("Insufficient credits")
    assert not Job.objects.filter(user=user).exists()


def test_img2img_and_inpainting_with_a1111s_mask_options(a1111):
    start = Image.effect_noise((64, 64), 80).convert("RGB")
    img2img = a1111.post("/img2img", {**TXT2IMG, "init_images": [b64(start)], "denoising_strength": 0.5})
    assert pixels(img2img).shape == (64, 64, 3) and Job.objects.order_by("-id").first().kind == "img2img"
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))  # the left half white: repainted
    body = {**TXT2IMG, "init_images": [b64(start)], "mask": b64(mask), "denoising_strength": 1, "mask_blur": 0}
    kept = pixels(a1111.post("/img2img", body))
    original = np.asarray(start, dtype=np.int16)
    assert np.array_equal(kept[:, 32:], original[:, 32:]) and not np.array_equal(kept[:, :32], original[:, :32])
    inverted = pixels(a1111.post("/img2img", {**body, "inpainting_mask_invert": 1}))
    assert np.array_equal(inverted[:, :32], original[:, :32]) and not np.array_equal(inverted[:, 32:], original[:, 32:])
    assert a1111.post("/img2img", TXT2IMG).status_code == 422


@pytest.fixture
def lora(transactional_db):
    call_command(
        "addmodel",
        str(model_files.lora(ROOT / "var" / "test-models" / "lora-a", seed=1)),
        "--id",
        "ink",
        "--kind",
        "lora",
    )


def test_lora_tags_in_the_prompt_choose_library_loras(a1111, lora):
    plain = pixels(a1111.post("/txt2img", TXT2IMG))
    tagged = a1111.post("/txt2img", {**TXT2IMG, "prompt": "a lighthouse <lora:ink:0.8>"})
    assert np.abs(pixels(tagged) - plain).mean() > 0.5
    job = Job.objects.order_by("-id").first()
    assert job.parameters.prompt == "a lighthouse" and job.parameters.loras == [{"id": "ink", "strength": 0.8}]
    unknown = a1111.post("/txt2img", {**TXT2IMG, "prompt": "a lighthouse <lora:nope:1>"})
    assert unknown.status_code == 422 and "'nope'" in unknown.json()["detail"][0]["msg"]
    assert [entry["name"] for entry in a1111.get("/loras").json()] == ["ink"]


def test_options_set_this_keys_checkpoint_only(a1111, live_server, account):
    listed = a1111.get("/sd-models").json()
    assert set(listed[0]) == {"title", "model_name", "hash", "sha256", "filename", "config"}
    default = listed[0]
    assert a1111.get("/options").json()["sd_model_checkpoint"] == default["title"]
    second = model_files.second_checkpoint(ROOT / "var" / "test-models" / "second-sdxl")
    call_command("addmodel", str(second), "--id", "second", "--kind", "checkpoint")
    titles = {entry["model_name"]: entry["title"] for entry in a1111.get("/sd-models").json()}
    chosen = a1111.post("/options", {"sd_model_checkpoint": titles["second"]})
    assert chosen.status_code == 200 and chosen.json() is None  # JSON null, as A1111 answers a setter
    assert a1111.get("/options").json()["sd_model_checkpoint"] == titles["second"]
    user, key = account
    assert ApiKey.objects.get(user=user).default_checkpoint == "second"
    _, other_key = make_account("bob@example.com")
    assert Client(live_server.url, other_key).get("/options").json()["sd_model_checkpoint"] == default["title"]
    assert a1111.post("/options", {"sd_model_checkpoint": "nope"}).status_code == 422


def test_the_listings_clients_probe_for(a1111):
    samplers = {sampler["name"]: sampler for sampler in a1111.get("/samplers").json()}
    assert {"Euler a", "DPM++ 2M", "DPM++ 2M SDE", "DDIM", "UniPC", "LCM", "Restart"} <= set(samplers)
    assert samplers["DPM++ 2M"] == {"name": "DPM++ 2M", "aliases": ["k_dpmpp_2m"], "options": {"scheduler": "karras"}}
    schedules = a1111.get("/schedulers").json()
    assert [entry["name"] for entry in schedules] == [
        "automatic", "uniform", "karras", "exponential", "polyexponential", "sgm_uniform",
        "kl_optimal", "align_your_steps", "simple", "normal", "ddim", "beta",
    ]  # fmt: skip
    assert schedules[2] == {
        "name": "karras", "label": "Karras", "aliases": None, "default_rho": 7.0, "need_inner_model": False
    }  # fmt: skip
    assert schedules[5]["aliases"] == ["SGMUniform"]
    upscalers = [entry["name"] for entry in a1111.get("/upscalers").json()]
    assert upscalers[0] == "None" and "RealESRGAN_x4plus" in upscalers and "Lanczos" in upscalers
    assert [mode["name"] for mode in a1111.get("/latent-upscale-modes").json()][:2] == [
        "Latent",
        "Latent (antialiased)",
    ]
    assert a1111.get("/embeddings").json() == {"loaded": {}, "skipped": {}}
    assert a1111.get("/sd-vae").json() == [] and a1111.get("/scripts").json() == {"txt2img": [], "img2img": []}
    assert a1111.get("/cmd-flags").json()["api"] is True
    for empty in ("/hypernetworks", "/face-restorers", "/prompt-styles", "/sd-modules"):
        assert a1111.get(empty).json() == []
    refreshed = a1111.post("/refresh-checkpoints")
    assert refreshed.status_code == 200 and refreshed.json() is None
    ping = requests.get(a1111.base_url.removesuffix("/sdapi/v1") + "/internal/ping", timeout=30)
    assert ping.status_code == 200 and ping.json() == {}
    idle = a1111.get("/progress").json()
    assert idle["progress"] == 0 and idle["state"]["job_count"] == 0 and idle["current_image"] is None


def test_extra_single_image_upscales(a1111):
    answer = a1111.post(
        "/extra-single-image", {"image": b64(Image.new("RGB", (32, 24), (9, 90, 200))), "upscaling_resize": 2}
    )
    assert answer.status_code == 200, answer.text
    image = Image.open(io.BytesIO(base64.b64decode(answer.json()["image"])))
    assert image.size == (64, 48) and Job.objects.order_by("-id").first().kind == "super_resolution"


@pytest.mark.postgres_only  # a paused worker may hold SQLite's one write lock
def test_progress_shows_the_running_job_and_interrupt_cancels_it(a1111, worker):
    answers = []
    with paused(worker):
        request = threading.Thread(
            target=lambda: answers.append(a1111.post("/txt2img", {**TXT2IMG, "steps": 40, "width": 128, "height": 128}))
        )
        request.start()
        seen = step_until(
            worker,
            lambda: a1111.get("/progress").json(),
            lambda bodies: bodies[-1]["progress"] > 0 and bodies[-1]["current_image"] is not None,
            key=lambda body: (body["progress"], body["current_image"] is None),
        )
        running = seen[-1]
        assert running["state"]["job_count"] == 1 and running["state"]["sampling_steps"] == 40
        assert 0 < running["state"]["sampling_step"] < 40 and running["eta_relative"] >= 0
        Image.open(io.BytesIO(base64.b64decode(running["current_image"])))  # the live preview
        assert a1111.post("/interrupt").status_code == 200
    request.join(timeout=60)
    assert answers[0].status_code == 500 and answers[0].json()["detail"] == "Canceled"
    assert Job.objects.order_by("-id").first().status == Job.Status.CANCELED
