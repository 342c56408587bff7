"""Input images: from a URL (SSRF-safe), base64 or a data URL, checked, normalised to RGB and stored."""

import base64
import binascii
import io
import re
import uuid
import warnings

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image, ImageOps

from generation import safe_http

SIGNATURES = {"PNG": (b"\x89PNG\r\n\x1a\n",), "JPEG": (b"\xff\xd8\xff",)}
DATA_URL = re.compile(r"^data:image/[a-z0-9.+-]+;base64,", re.IGNORECASE)


class ImageInputError(Exception):
    """A message for the field, e.g. "The init image must be a valid URL or base64 image."."""


def _format(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for name, prefixes in SIGNATURES.items():
        if data.startswith(prefixes):
            return name
    return None


def read_source(value, label: str) -> bytes:
    """The raw bytes behind a URL, data URL or base64 string."""
    invalid = ImageInputError(f"The {label} must be a valid URL or base64 image.")
    if not isinstance(value, str) or not value.strip():
        raise invalid
    value = value.strip()
    if value.lower().startswith(("http://", "https://")):
        try:
            response = safe_http.request("GET", value, max_bytes=settings.INPUT_IMAGE_MAX_BYTES)
        except safe_http.UnsafeURL as exc:
            raise ImageInputError(f"The {label} could not be fetched ({exc}).") from exc
        if response.status != 200:
            raise ImageInputError(f"The {label} could not be fetched (HTTP {response.status}).")
        return response.content
    encoded = DATA_URL.sub("", value, count=1)
    if len(encoded) * 3 // 4 > settings.INPUT_IMAGE_MAX_BYTES:
        raise ImageInputError(f"The {label} is too large.")
    try:
        return base64.b64decode(re.sub(r"\s+", "", encoded), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid from exc


def decode(data: bytes, label: str) -> Image.Image:
    """Decode PNG/JPEG/WebP bytes into an upright RGB image, refusing decompression bombs."""
    if _format(data) is None:
        raise ImageInputError(f"The {label} must be a PNG, JPEG or WebP image.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > settings.INPUT_IMAGE_MAX_PIXELS:
                raise ImageInputError(f"The {label} has too many pixels ({width}x{height}).")
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageInputError(f"The {label} has too many pixels.") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageInputError(f"The {label} is not a readable image.") from exc
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def load(value, label: str) -> Image.Image:
    return decode(read_source(value, label), label)


def store_input(image: Image.Image) -> str:
    """Save an input image (lossless) for the worker; return its storage name."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return default_storage.save(f"inputs/{uuid.uuid4()}.png", ContentFile(buffer.getvalue()))


def open_stored(name: str) -> Image.Image:
    with default_storage.open(name, "rb") as handle:
        image = Image.open(handle)
        image.load()
    return image.convert("RGB")


def fit_size(width: int, height: int, limit: int = 1024) -> tuple[int, int]:
    """An image's size scaled down to fit `limit` (keeping its aspect), in multiples of 8, at least 64."""
    scale = min(1.0, limit / max(width, height))
    return tuple(max(64, int(side * scale) // 8 * 8) for side in (width, height))
