"""Input images: SSRF refusals with no connection made, size/pixel caps, formats, EXIF, alpha."""

import base64
import io
import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.conf import settings
from PIL import Image

from billing.models import Account
from generation.infra import safe_http
from tests.conftest import Api, make_account, png_bytes
from tests.http_server import LocalServer, Route
from tests.test_recovery import wait_until


def img2img(api, init_image):
    return api.post("/api/v3/img2img", {"prompt": "x", "init_image": init_image, "num_inference_steps": 1})


def error_of(body) -> str:
    assert body["status"] == "error", body
    assert list(body["message"]) == ["init_image"]
    return body["message"]["init_image"][0]


@pytest.fixture
def no_private(settings):
    settings.SAFE_HTTP_ALLOWED_NETWORKS = []


@pytest.mark.parametrize(
    "template",
    [
        "http://127.0.0.1:{port}/cat.png",
        "http://localhost:{port}/cat.png",  # a hostname that resolves to loopback
        "http://[::1]:{port}/cat.png",
        "http://127.1:{port}/cat.png",
        "http://0.0.0.0:{port}/cat.png",
        "http://10.0.0.1:{port}/cat.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]:{port}/cat.png",
        "file:///etc/passwd",
        "ftp://127.0.0.1/cat.png",
    ],
)
def test_private_addresses_are_refused_without_connecting(api, http_server, image_url, no_private, template):
    message = error_of(img2img(api, template.format(port=http_server.port)))
    assert message.startswith("The init image could not be fetched") or "valid URL" in message
    assert http_server.connections == 0


def test_redirect_to_an_internal_address_is_refused(api, http_server):
    internal = LocalServer(host="127.0.0.2")  # not in the allowed networks
    internal.routes["/secret.png"] = Route(body=png_bytes())
    try:
        http_server.routes["/jump"] = Route(status=302, headers={"Location": f"{internal.url}/secret.png"})
        message = error_of(img2img(api, f"{http_server.url}/jump"))
        assert "address not allowed" in message
        assert internal.connections == 0
    finally:
        internal.stop()


def test_redirects_forever(api, http_server):
    http_server.routes["/loop"] = Route(status=302, headers={"Location": "/loop"})
    assert "too many redirects" in error_of(img2img(api, f"{http_server.url}/loop"))


def test_a_url_that_never_answers(api, http_server, settings):
    settings.SAFE_HTTP_READ_TIMEOUT = 0.5
    http_server.routes["/slow.png"] = Route(body=png_bytes(), delay=3)
    assert "could not be fetched" in error_of(img2img(api, f"{http_server.url}/slow.png"))


def test_http_error_status(api, http_server):
    assert "HTTP 404" in error_of(img2img(api, f"{http_server.url}/missing.png"))


def test_too_many_bytes(api, http_server, settings):
    settings.INPUT_IMAGE_MAX_BYTES = 1000
    http_server.routes["/big.png"] = Route(body=png_bytes((256, 256), color=None) + b"\0" * 2000)
    assert "too large" in error_of(img2img(api, f"{http_server.url}/big.png"))


def bomb_png(width, height) -> bytes:
    """A valid PNG header claiming a huge size, with a tiny compressed body."""
    return png_of(width, height, zlib.compress(b"\0" * 1000))


def png_of(width, height, idat: bytes) -> bytes:
    """A 1-bit greyscale PNG of that size whose one IDAT chunk is `idat`, whole (IEND and every CRC)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bomb(api):
    encoded = base64.b64encode(bomb_png(40000, 40000)).decode()
    assert "too many pixels" in error_of(img2img(api, encoded))


def test_truncated_png(api):
    noisy = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(noisy, format="PNG")
    encoded = base64.b64encode(noisy.getvalue()[:200]).decode()
    assert "not a readable image" in error_of(img2img(api, encoded))
    assert img2img(api, base64.b64encode(noisy.getvalue()).decode())["status"] == "success"  # whole, it is one


def test_a_one_pixel_high_strip_is_refused_by_its_shape(api):
    """1 x 16,000,000 pixels is under the pixel cap but no image a model can use (the worker once took
    a gigabyte for it): refused from its header, by its longest side and its aspect."""
    strip = base64.b64encode(bomb_png(16_000_000, 1)).decode()
    assert "too long (16000000x1): at most 8192 pixels a side" in error_of(img2img(api, strip))
    narrow = base64.b64encode(bomb_png(8000, 100)).decode()
    assert "too narrow (8000x100)" in error_of(img2img(api, narrow))


def test_the_images_of_one_request_share_a_pixel_budget(api, settings):
    settings.INPUT_REQUEST_MAX_PIXELS = 64 * 64 + 100
    image = base64.b64encode(png_bytes((64, 64))).decode()
    body = api.post("/api/v3/inpaint", {"prompt": "x", "init_image": image, "mask_image": image})
    assert body["status"] == "error", body
    assert body["message"]["mask_image"] == ["The images of this request have too many pixels in all: at most 4196."]
    assert img2img(api, image)["status"] == "success"  # one image fits


def test_the_web_tier_checks_headers_and_the_worker_decodes(api, account):
    """A PNG whose header and structure are sound but whose pixels cannot be decoded is taken by the web
    tier (it decodes no image) and failed by the worker with the reason, refunded."""
    user, _ = account
    before = Account.objects.get(user=user).balance
    body = img2img(api, base64.b64encode(png_of(64, 64, b"these are no compressed pixels")).decode())
    body = api.wait_for(body["id"]) if body["status"] == "processing" else body
    assert body["status"] == "failed" and body["message"] == "Failed: The init image is not a readable image.", body
    assert Account.objects.get(user=user).balance == before


def test_svg_is_not_an_image(api, http_server):
    http_server.routes["/x.svg"] = Route(
        body=b"<svg xmlns='http://www.w3.org/2000/svg'/>", headers={"Content-Type": "image/svg+xml"}
    )
    assert "PNG, JPEG or WebP" in error_of(img2img(api, f"{http_server.url}/x.svg"))


def test_exif_orientation_and_alpha_are_applied(api, http_server):
    # a 64x128 JPEG whose EXIF says "rotate 90": upright it is 128x64
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.new("RGB", (64, 128), (10, 200, 10)).save(buffer, format="JPEG", exif=exif.tobytes())
    http_server.routes["/rotated.jpg"] = Route(body=buffer.getvalue())
    body = img2img(api, f"{http_server.url}/rotated.jpg")
    assert body["status"] == "success", body
    assert (body["meta"]["W"], body["meta"]["H"]) == (128, 64)

    webp = io.BytesIO()
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(webp, format="WEBP")
    body = img2img(api, "data:image/webp;base64," + base64.b64encode(webp.getvalue()).decode())
    assert body["status"] == "success", body


def _inputs_stored() -> set:
    folder = Path(settings.MEDIA_ROOT) / "inputs"
    return set(folder.iterdir()) if folder.exists() else set()


def test_a_refused_or_replayed_request_neither_fetches_nor_stores_its_image(api, account, http_server, image_url):
    """Images are fetched after the account's limits and an idempotent replay are checked, and stored
    only once the job is admitted: nothing is left behind for requests that make no job."""
    user, _ = account
    stored = _inputs_stored()
    first = api.post(
        "/api/v3/img2img",
        {"prompt": "x", "init_image": image_url, "num_inference_steps": 1},
        headers={"Idempotency-Key": "input-once"},
    )
    assert first["status"] == "success" and len(http_server.requests) == 1
    assert len(_inputs_stored() - stored) == 1
    replay = api.post(
        "/api/v3/img2img",
        {"prompt": "x", "init_image": image_url, "num_inference_steps": 1},
        headers={"Idempotency-Key": "input-once"},
    )
    assert replay["id"] == first["id"]
    Account.objects.filter(user=user).update(balance=0)
    broke = img2img(api, image_url)
    assert broke["message"].startswith("Insufficient credits")
    assert len(http_server.requests) == 1 and len(_inputs_stored() - stored) == 1


@pytest.mark.parametrize(
    "address",
    [
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo to 192.0.2.45
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b:1::a9fe:a9fe",  # local-use NAT64 of 169.254.169.254
        "::ffff:10.0.0.1",  # IPv4-mapped
    ],
)
def test_ipv6_forms_that_tunnel_to_a_private_ipv4_are_refused(no_private, address):
    assert not safe_http.is_allowed_address(address)


def test_ipv6_forms_of_public_addresses_and_public_ipv6_are_allowed(no_private):
    for address in ("2002:808:808::1", "64:ff9b::808:808", "2606:4700::1111", "8.8.8.8"):
        assert safe_http.is_allowed_address(address), address


def test_a_server_that_sends_one_byte_at_a_time_is_cut_off_at_the_total_deadline(api, http_server, settings):
    """Each byte restarts the read timeout; the total deadline still bounds the whole fetch."""
    settings.SAFE_HTTP_TOTAL_TIMEOUT = 1.5
    body = png_bytes()
    http_server.routes["/slow.png"] = Route(body=body, headers={"Content-Type": "image/png"}, trickle=0.1)
    started = time.monotonic()
    assert "took too long" in error_of(img2img(api, f"{http_server.url}/slow.png"))
    assert time.monotonic() - started < len(body) * 0.1 / 2  # well before the body could have come


def test_an_account_fetches_few_urls_at_once_and_others_are_still_answered(api, http_server, settings, live_server):
    settings.SAFE_HTTP_TOTAL_TIMEOUT = 3
    settings.FETCHES_PER_ACCOUNT = 2
    http_server.routes["/slow.png"] = Route(body=png_bytes(), headers={"Content-Type": "image/png"}, trickle=0.1)
    _, other_key = make_account("unrelated@example.com")
    with ThreadPoolExecutor(max_workers=6) as pool:
        slow = [pool.submit(img2img, api, f"{http_server.url}/slow.png") for _ in range(6)]
        wait_until(lambda: len(http_server.requests) == 2)  # the account's two slots are fetching
        assert Api(live_server.url, other_key).post("/api/v3/system_load")["status"] == "ok"
        assert sum(not future.done() for future in slow) >= 2  # answered while those two still trickled
        errors = [error_of(future.result()) for future in slow]
    assert len(http_server.requests) == 2  # only the account's two slots reached the slow server
    assert sum("Too many images are being fetched" in error for error in errors) == 4
