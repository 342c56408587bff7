"""POST /api/v3/super_resolution: output is ONE URL string; scale 2-4; model ids."""

import pytest

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
