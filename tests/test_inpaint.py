"""POST /api/v3/inpaint: init image + mask (white = repaint), a mask of another size is resized."""

import base64
import io

import numpy as np
from PIL import Image

from tests.conftest import png_bytes
from tests.http_server import Route
from tests.test_text2img import META_KEYS, decode


def mask_bytes(size) -> bytes:
    mask = Image.new("L", size, 0)
    mask.paste(255, (0, 0, size[0] // 2, size[1]))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


def test_inpaint_with_a_mask_of_another_size(api, http_server):
    http_server.routes["/room.png"] = Route(body=png_bytes((96, 64)))
    http_server.routes["/mask.png"] = Route(body=mask_bytes((30, 20)))
    body = api.post(
        "/api/v3/inpaint",
        {
            "prompt": "a sofa",
            "init_image": f"{http_server.url}/room.png",
            "mask_image": f"{http_server.url}/mask.png",
            "num_inference_steps": "3",
            "strength": "1",
            "seed": 3,
        },
    )
    assert body["status"] == "success", body
    assert set(body["meta"]) >= META_KEYS | {"init_image", "mask_image", "strength"}
    assert body["meta"]["mask_image"] == f"{http_server.url}/mask.png"
    assert decode(body["output"][0]).size == (96, 64)


def test_missing_mask(api, image_url):
    body = api.post("/api/v3/inpaint", {"prompt": "x", "init_image": image_url})
    assert body["message"] == {"mask_image": ["The mask image field is required."]}


def test_v4_dreambooth_inpaint_alias(api, image_url):
    body = api.post(
        "/api/v4/dreambooth/inpaint",
        {
            "prompt": "x",
            "init_image": image_url,
            "mask_image": image_url,
            "num_inference_steps": 2,
        },
    )
    assert body["status"] == "success", body
    # v4 chooses the model from the library: an id it does not have is refused, not ignored
    unknown = api.post(
        "/api/v4/dreambooth/inpaint",
        {"prompt": "x", "init_image": image_url, "mask_image": image_url, "model_id": "whatever"},
    )
    assert unknown["message"] == {"model_id": ["The model id 'whatever' does not exist."]}


def test_only_the_masked_pixels_change(api):
    """Outside the mask (black) the output is the init image's own pixels; inside (white) it is repainted.
    A noisy init image, so that a repainted pixel cannot match by chance."""
    init = Image.effect_noise((64, 64), 80).convert("RGB")
    buffer = io.BytesIO()
    init.save(buffer, format="PNG")
    encoded = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    mask = "data:image/png;base64," + base64.b64encode(mask_bytes((64, 64))).decode()  # the left half white
    body = api.post(
        "/api/v3/inpaint",
        {"prompt": "a sofa", "init_image": encoded, "mask_image": mask, "num_inference_steps": 4, "seed": 3},
    )
    output = np.asarray(decode(body["output"][0]).convert("RGB"), dtype=np.int16)
    original = np.asarray(init, dtype=np.int16)
    assert np.array_equal(output[:, 32:], original[:, 32:])  # kept
    assert np.abs(output[:, :32] - original[:, :32]).mean() > 10  # repainted
