"""POST /api/v3/img2img: init image by URL or base64, size from the image, strength."""

import base64

import numpy as np

from generation.models import Job
from tests.conftest import download, png_bytes
from tests.http_server import Route
from tests.test_text2img import META_KEYS, decode


def test_img2img_from_url_defaults_to_the_image_size(api, http_server):
    http_server.routes["/photo.png"] = Route(body=png_bytes((120, 90)))
    url = f"{http_server.url}/photo.png"
    body = api.post(
        "/api/v3/img2img", {"prompt": "watercolor", "init_image": url, "num_inference_steps": "4", "seed": 5}
    )
    assert body["status"] == "success", body
    assert set(body["meta"]) >= META_KEYS | {"init_image", "strength"}
    assert body["meta"]["init_image"] == url
    assert body["meta"]["strength"] == 0.7
    assert (body["meta"]["W"], body["meta"]["H"]) == (120, 88)
    assert decode(body["output"][0]).size == (120, 88)


def test_prompt_strength_alias_and_base64_input(api):
    encoded = base64.b64encode(png_bytes((64, 64))).decode()
    body = api.post(
        "/api/v3/img2img",
        {
            "prompt": "x",
            "init_image": "data:image/png;base64," + encoded,
            "prompt_strength": "0.5",
            "num_inference_steps": 2,
        },
    )
    assert body["status"] == "success", body
    assert body["meta"]["strength"] == 0.5
    assert body["meta"]["init_image"].startswith("http")  # where the upload was stored, not the blob
    assert decode(body["meta"]["init_image"]).size == (64, 64)

    plain = api.post("/api/v3/img2img", {"prompt": "x", "init_image": encoded, "num_inference_steps": 2})
    assert plain["meta"]["strength"] == 0.7  # the default, without either field
    assert decode(plain["output"][0]).size == (64, 64)


def test_tiny_strength_still_runs_a_step(api, image_url):
    body = api.post(
        "/api/v3/img2img", {"prompt": "x", "init_image": image_url, "strength": 0, "num_inference_steps": 3}
    )
    assert body["status"] == "success", body
    job = Job.objects.get(pk=body["id"])
    assert job.progress_step == job.progress_total == 1  # one denoising step of the three, not none


def pixels(body) -> np.ndarray:
    assert body["status"] == "success", body
    return np.asarray(decode(body["output"][0]).convert("RGB"), dtype=np.int16)


def test_the_image_follows_the_init_image_and_the_strength(api):
    """Same seed and prompt: another init image gives another image, another strength another image, and
    the same request the same image again. (The demo model's VAE has random weights, so colours do not
    survive its round trip; what is compared is that the inputs reach the pipeline.)"""

    def request(color, strength):
        init = "data:image/png;base64," + base64.b64encode(png_bytes((64, 64), color)).decode()
        body = {"prompt": "a harbour", "init_image": init, "strength": strength, "num_inference_steps": 10, "seed": 4}
        return pixels(api.post("/api/v3/img2img", body))

    red = request((220, 30, 30), 0.3)
    assert np.abs(request((30, 30, 220), 0.3) - red).mean() > 1
    assert np.abs(request((220, 30, 30), 1.0) - red).mean() > 1
    assert np.array_equal(request((220, 30, 30), 0.3), red)


def test_explicit_size_and_same_seed_same_image(api, image_url):
    request = {"prompt": "x", "init_image": image_url, "width": 128, "height": 72, "num_inference_steps": 2, "seed": 9}
    first, second = api.post("/api/v3/img2img", request), api.post("/api/v3/img2img", request)
    assert decode(first["output"][0]).size == (128, 72)
    assert download(first["output"][0]) == download(second["output"][0])


def test_missing_init_image(api):
    body = api.post("/api/v3/img2img", {"prompt": "x"})
    assert body["message"] == {"init_image": ["The init image field is required."]}


def test_init_image_that_is_not_an_image(api, http_server):
    http_server.routes["/page.html"] = Route(body=b"<html>hello</html>", headers={"Content-Type": "image/png"})
    body = api.post("/api/v3/img2img", {"prompt": "x", "init_image": f"{http_server.url}/page.html"})
    assert body["status"] == "error"
    assert body["message"] == {"init_image": ["The init image must be a PNG, JPEG or WebP image."]}
    garbage = api.post("/api/v3/img2img", {"prompt": "x", "init_image": "not an image at all"})
    assert garbage["message"] == {"init_image": ["The init image must be a valid URL or base64 image."]}


def test_an_output_of_this_server_is_read_from_storage_not_fetched(api, settings):
    """ "Send to img2img": an output URL of this deployment works even where loopback is refused (as on
    a local install); other URLs of this host still go through the SSRF-safe fetcher and are refused."""
    settings.SAFE_HTTP_ALLOWED_NETWORKS = []
    first = api.post("/api/v3/text2img", {"prompt": "a red door", "width": 96, "height": 64, "num_inference_steps": 1})
    output = first["output"][0]
    again = api.post("/api/v3/img2img", {"prompt": "a blue door", "init_image": output, "num_inference_steps": 2})
    assert again["status"] == "success", again
    assert (again["meta"]["W"], again["meta"]["H"]) == (96, 64) and again["meta"]["init_image"] == output

    missing = api.post("/api/v3/img2img", {"prompt": "x", "init_image": output.replace("-0.png", "-9.png")})
    assert missing["status"] == "error" and "no such image here" in str(missing["message"])
    elsewhere = api.post("/api/v3/img2img", {"prompt": "x", "init_image": api.base_url + "/healthz"})
    assert elsewhere["status"] == "error" and "could not be fetched" in str(elsewhere["message"])
