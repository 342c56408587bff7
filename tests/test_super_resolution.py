"""POST /api/v3/super_resolution: output is ONE URL string; scale 2-4; model ids."""

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from billing.models import Account
from generation.models import Job
from generation.runtime.upscale import RRDBNet
from tests.conftest import png_bytes
from tests.http_server import Route
from tests.test_text2img import decode


@pytest.fixture
def small_image(http_server):
    http_server.routes["/small.png"] = Route(body=png_bytes((40, 30)))
    return f"{http_server.url}/small.png"


@pytest.mark.parametrize(
    "extra, size",
    [
        ({}, (160, 120)),
        ({"scale": "2"}, (80, 60)),
        ({"scale": 3, "model_id": "RealESRGAN_x2plus"}, (120, 90)),
        ({"scale": 9, "model_id": "realesr-general-x4v3"}, (160, 120)),
        ({"model_id": "no-such-model", "face_enhance": "false"}, (160, 120)),
    ],
)
def test_upscale(api, small_image, extra, size):
    body = api.post("/api/v3/super_resolution", {"url": small_image, **extra})
    assert body["status"] == "success", body
    assert isinstance(body["id"], int) and isinstance(body["generationTime"], float)
    assert isinstance(body["output"], str) and body["output"].endswith("-0.png")
    assert decode(body["output"]).size == size


def test_processing_then_fetch_gives_a_string(api, small_image):
    body = api.post("/api/v5/super_resolution", {"init_image": small_image, "scale": 2, "instant_response": "yes"})
    assert body["status"] == "processing"
    assert body["fetch_result"].endswith(f"/fetch/{body['id']}")
    done = api.wait_for(body["id"])
    assert done["status"] == "success" and isinstance(done["output"], str)


def test_missing_url(api):
    body = api.post("/api/v3/super_resolution", {"scale": 2})
    assert body["message"] == {"url": ["The url field is required."]}


def test_too_large_to_upscale(api, http_server, settings):
    settings.UPSCALE_MAX_INPUT_PIXELS = 100
    http_server.routes["/big.png"] = Route(body=png_bytes((40, 30)))
    body = api.post("/api/v3/super_resolution", {"url": f"{http_server.url}/big.png"})
    assert body["status"] == "error" and "too large to upscale" in body["message"]["url"][0]


def test_demo_mode_is_a_plain_resize_and_says_so(api, small_image):
    body = api.post("/api/v3/super_resolution", {"url": small_image, "scale": 2})
    assert body["meta"]["demo"].startswith("upscaled by a plain Lanczos resize (demo mode")
    expected = Image.open(io.BytesIO(png_bytes((40, 30)))).convert("RGB").resize((80, 60), Image.LANCZOS)
    assert np.abs(np.asarray(decode(body["output"]), dtype=int) - np.asarray(expected, dtype=int)).max() <= 1
    generated = api.post(
        "/api/v3/text2img", {"prompt": "x", "width": 64, "height": 64, "num_inference_steps": 1, "upscale": "yes"}
    )
    assert "demo" in generated["meta"]


def test_an_installed_weight_file_is_loaded_and_run_in_tiles(api, small_image, settings):
    """A file in the official format (here random weights of the real architecture) is what the worker
    runs, tile by tile: no demo note, and the image is the network's, not a resize."""
    path = Path(settings.UPSCALER_DIR) / "RealESRGAN_x4plus_anime_6B.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save({"params_ema": RRDBNet(scale=4, num_feat=8, num_block=1).state_dict()}, path)
    try:
        body = api.post("/api/v3/super_resolution", {"url": small_image, "model_id": "RealESRGAN_x4plus_anime_6B"})
    finally:
        path.unlink()
    assert body["status"] == "success" and "meta" not in body, body
    upscaled = np.asarray(decode(body["output"]), dtype=int)
    resized = np.asarray(Image.open(io.BytesIO(png_bytes((40, 30)))).resize((160, 120), Image.LANCZOS), dtype=int)
    assert upscaled.shape == resized.shape and np.abs(upscaled - resized).mean() > 5


def test_without_demo_mode_a_missing_upscaler_is_refused_before_anything_is_charged(
    api, account, small_image, settings, tmp_path
):
    settings.UPSCALER_DEMO = False
    settings.UPSCALER_DIR = str(tmp_path)  # no official weights installed
    user, _ = account
    before = Account.objects.get(user=user).balance
    body = api.post("/api/v3/super_resolution", {"url": small_image, "model_id": "RealESRGAN_x2plus"})
    assert body["message"] == {"model_id": ["The upscaler RealESRGAN_x2plus is not installed on this deployment."]}
    generated = api.post("/api/v3/text2img", {"prompt": "x", "width": 64, "height": 64, "upscale": 4})
    assert generated["message"] == {"upscale": ["The upscaler RealESRGAN_x4plus is not installed on this deployment."]}
    assert Account.objects.get(user=user).balance == before and not Job.objects.filter(user=user).exists()
