"""Input images: parsed from what the client sent (a URL, base64 or a data URL) without any I/O, checked
and normalised to RGB (a URL is fetched once the request is admitted: inputs/storage.py's fetch_image)."""

import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass

from django.conf import settings
from PIL import Image, ImageOps

from generation.infra import safe_http

SIGNATURES = {"PNG": (b"\x89PNG\r\n\x1a\n",), "JPEG": (b"\xff\xd8\xff",)}
DATA_URL = re.compile(r"^data:image/[a-z0-9.+-]+;base64,", re.IGNORECASE)


class ImageInputError(Exception):
    """A message for the field, e.g. "The init image must be a valid URL or base64 image."."""


@dataclass
class ImageSource:
    """An input image as the request gave it: a URL still to fetch, or an image decoded from base64."""

    field: str  # the request field it came in (named in errors)
    url: str | None = None
    image: Image.Image | None = None
    stored: str | None = None  # the storage name when the URL is one of this deployment's outputs

    @property
    def label(self) -> str:
        return self.field.replace("_", " ")


def parse(value, field: str) -> ImageSource:
    """Check what the client sent for an image field; decode it when it is inline (no network)."""
    label = field.replace("_", " ")
    invalid = ImageInputError(f"The {label} must be a valid URL or base64 image.")
    if not isinstance(value, str) or not value.strip():
        raise invalid
    value = value.strip()
    if value.lower().startswith(("http://", "https://")):
        try:
            safe_http.split_url(value)
        except safe_http.UnsafeURL as exc:
            raise ImageInputError(f"The {label} could not be fetched ({exc}).") from exc
        return ImageSource(field, url=value)
    encoded = DATA_URL.sub("", value, count=1)
    if len(encoded) * 3 // 4 > settings.INPUT_IMAGE_MAX_BYTES:
        raise ImageInputError(f"The {label} is too large.")
    try:
        data = base64.b64decode(re.sub(r"\s+", "", encoded), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid from exc
    return ImageSource(field, image=decode(data, label))


def _format(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for name, prefixes in SIGNATURES.items():
        if data.startswith(prefixes):
            return name
    return None


def _open(data: bytes, label: str) -> Image.Image:
    """PNG/JPEG/WebP bytes as an upright image of any mode, refusing decompression bombs."""
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
    return ImageOps.exif_transpose(image)


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def decode(data: bytes, label: str) -> Image.Image:
    """Decode PNG/JPEG/WebP bytes into an upright RGB image (transparency flattened onto white)."""
    image = _open(data, label)
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def transparent_mask(data: bytes, label: str) -> Image.Image:
    """A mask from an image's transparency, as OpenAI's edits take one: transparent pixels white (to be
    repainted), opaque ones black, partly transparent ones grey."""
    image = _open(data, label)
    if not _has_alpha(image):
        raise ImageInputError(f"The {label} must be a PNG with transparency (transparent = repaint).")
    return ImageOps.invert(image.convert("RGBA").getchannel("A")).convert("RGB")
