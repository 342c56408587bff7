"""Output options: JPEG, base64 files and inline strings, per-image seeds."""

import base64
import io

from PIL import Image

from tests.conftest import download


def test_jpg_output(api):
    body = api.post(
        "/api/v3/text2img",
        {"prompt": "x", "width": 64, "height": 64, "num_inference_steps": 1, "output_format": "jpeg"},
    )
    assert body["output"][0].endswith("-0.jpg")
    assert Image.open(io.BytesIO(download(body["output"][0]))).format == "JPEG"


def test_base64_output(api):
    body = api.post(
        "/api/v3/text2img",
        {"prompt": "x", "width": 64, "height": 72, "num_inference_steps": 1, "samples": 2, "base64": "yes"},
    )
    assert body["status"] == "success"
    assert [url.rsplit("-", 1)[1] for url in body["output"]] == ["0.base64", "1.base64"]
    for url, inline in zip(body["output"], body["output_base64"]):
        text = download(url).decode()
        assert text == inline and text.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(text.split(",", 1)[1])))
        assert image.size == (64, 72)


def test_each_image_of_a_batch_has_its_own_seed(api):
    body = api.post(
        "/api/v3/text2img",
        {"prompt": "x", "width": 64, "height": 64, "num_inference_steps": 1, "samples": 3, "seed": 100},
    )
    assert body["meta"]["seed"] == 100
    assert body["meta"]["seeds"] == [100, 101, 102]


def test_safety_checker_is_reported_off_without_a_model(api):
    body = api.post(
        "/api/v3/text2img",
        {"prompt": "x", "width": 64, "height": 64, "num_inference_steps": 1, "safety_checker": "yes"},
    )
    assert body["meta"]["safetychecker"] == "no"
    assert "nsfw_content_detected" not in body
