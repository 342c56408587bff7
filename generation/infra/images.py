"""Input images. The web tier parses what the client sent (a URL, base64 or a data URL) without any I/O
and checks an image from its header alone — format, size, pixel count, longest side, aspect, that the
file is whole — so that it never decodes one (a URL is fetched once the request is admitted:
inputs/storage.py's fetch). The worker decodes them (`decode`), with what a front-end asked done to them.
"""

import base64
import binascii
import io
import re
import struct
import warnings
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from PIL import Image, ImageFilter, ImageOps

from generation.infra import safe_http

SIGNATURES = {"PNG": (b"\x89PNG\r\n\x1a\n",), "JPEG": (b"\xff\xd8\xff",)}
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
DATA_URL = re.compile(r"^data:image/[a-z0-9.+-]+;base64,", re.IGNORECASE)
PNG_END = b"IEND\xaeB`\x82"
ORIENTATION = 0x0112  # EXIF: 5-8 turn the image a quarter, so its upright width is its stored height
MAX_BLUR = 64


class ImageInputError(Exception):
    """A message for the field, e.g. "The init image must be a valid URL or base64 image."."""


@dataclass
class ImageSource:
    """An input image as the request gave it: a URL still to fetch, or the encoded image with what its
    header says (inline images at once, fetched ones once fetched)."""

    field: str  # the request field it came in (named in errors)
    url: str | None = None
    data: bytes | None = None  # the encoded image, stored as it came
    format: str = ""  # PNG, JPEG or WEBP
    size: tuple[int, int] | None = None  # upright (width, height)
    has_alpha: bool = False
    stored: str | None = None  # the storage name when the URL is one of this deployment's outputs
    treatments: tuple[str, ...] = ()  # for the worker, in order: "alpha_mask", "invert", "blur:<radius>"
    archive: bool = False  # a .zip of images (a training's photos), opened once fetched
    name: str = ""  # how errors name it, when not by its field ("image 3 of images")

    @property
    def label(self) -> str:
        return self.name or self.field.replace("_", " ")

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


def parse(value, field: str, name: str = "", archives: bool = False) -> ImageSource:
    """Check what the client sent for an image field; an inline image is checked from its header. With
    `archives`, a URL of a .zip names several images."""
    source = ImageSource(field, name=name)
    invalid = ImageInputError(f"The {source.label} must be a valid URL or base64 image.")
    if not isinstance(value, str) or not value.strip():
        raise invalid
    value = value.strip()
    if value.lower().startswith(("http://", "https://")):
        try:
            safe_http.split_url(value)
        except safe_http.UnsafeURL as exc:
            raise ImageInputError(f"The {source.label} could not be fetched ({exc}).") from exc
        source.url = value
        source.archive = archives and urlsplit(value).path.lower().endswith(".zip")
        return source
    encoded = DATA_URL.sub("", value, count=1)
    if len(encoded) * 3 // 4 > settings.INPUT_IMAGE_MAX_BYTES:
        raise ImageInputError(f"The {source.label} is too large.")
    try:
        data = base64.b64decode(re.sub(r"\s+", "", encoded), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid from exc
    return inspect(source, data)


def inspect(source: ImageSource, data: bytes) -> ImageSource:
    """`source` with `data` and what its header says, once the header shows an image the worker can
    decode within the limits (no pixel is decoded here)."""
    label = source.label
    image_format = _format(data)
    if image_format is None:
        raise ImageInputError(f"The {label} must be a PNG, JPEG or WebP image.")
    if not _whole(data, image_format):
        raise ImageInputError(f"The {label} is not a readable image (the file is cut short).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                has_alpha = _has_alpha(image)
                turned = image_format != "PNG" and image.getexif().get(ORIENTATION, 1) in (5, 6, 7, 8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageInputError(f"The {label} has too many pixels.") from exc
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        raise ImageInputError(f"The {label} is not a readable image.") from exc
    _check_size(label, width, height)
    source.data, source.format, source.has_alpha = data, image_format, has_alpha
    source.size = (height, width) if turned else (width, height)
    return source


def _check_size(label: str, width: int, height: int):
    if width < 1 or height < 1:
        raise ImageInputError(f"The {label} is not a readable image.")
    if width * height > settings.INPUT_IMAGE_MAX_PIXELS:
        raise ImageInputError(f"The {label} has too many pixels ({width}x{height}).")
    if max(width, height) > settings.INPUT_IMAGE_MAX_SIDE:
        raise ImageInputError(
            f"The {label} is too long ({width}x{height}): at most {settings.INPUT_IMAGE_MAX_SIDE} pixels a side."
        )
    if max(width, height) / min(width, height) > settings.INPUT_IMAGE_MAX_ASPECT:
        raise ImageInputError(
            f"The {label} is too narrow ({width}x{height}): its long side may be at most "
            f"{settings.INPUT_IMAGE_MAX_ASPECT:g} times its short one."
        )


def _format(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for name, prefixes in SIGNATURES.items():
        if data.startswith(prefixes):
            return name
    return None


def _whole(data: bytes, image_format: str) -> bool:
    """Whether the file is all there, from its structure: a PNG ends with IEND, a WebP is as long as its
    RIFF header says. (A JPEG's end marker may be followed by a camera's own data: its decoder judges.)"""
    if image_format == "PNG":
        return PNG_END in data[-1024:]
    if image_format == "WEBP":
        return len(data) >= 8 + struct.unpack("<I", data[4:8])[0]
    return True


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


# the worker's side -------------------------------------------------------------------------------


def decode(data: bytes, label: str, treatments=()) -> Image.Image:
    """Decode PNG/JPEG/WebP bytes into an upright RGB image (transparency flattened onto white), then
    do `treatments` to it: "alpha_mask" makes the mask OpenAI's edits mean (transparent = white, to be
    repainted), "invert" inverts it, "blur:<radius>" blurs it."""
    image = _open(data, label)
    if "alpha_mask" in treatments:
        if not _has_alpha(image):
            raise ImageInputError(f"The {label} must be a PNG with transparency (transparent = repaint).")
        result = ImageOps.invert(image.convert("RGBA").getchannel("A")).convert("RGB")
    elif _has_alpha(image):
        rgba = image.convert("RGBA")
        result = Image.new("RGB", rgba.size, (255, 255, 255))
        result.paste(rgba, mask=rgba.getchannel("A"))
    else:
        result = image.convert("RGB")
    for treatment in treatments:
        name, _, argument = treatment.partition(":")
        if name == "invert":
            result = ImageOps.invert(result)
        elif name == "blur":
            result = result.filter(ImageFilter.GaussianBlur(min(float(argument), MAX_BLUR)))
    return result


def _open(data: bytes, label: str) -> Image.Image:
    """PNG/JPEG/WebP bytes as an upright image of any mode, within the same limits as `inspect`."""
    if _format(data) is None:
        raise ImageInputError(f"The {label} must be a PNG, JPEG or WebP image.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            _check_size(label, *image.size)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageInputError(f"The {label} has too many pixels.") from exc
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        raise ImageInputError(f"The {label} is not a readable image.") from exc
    return ImageOps.exif_transpose(image)
