"""Writing generated images through Django's storage API and turning names into absolute URLs."""

import base64
import io

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

FORMATS = {"png": ("PNG", {"compress_level": 1}), "jpg": ("JPEG", {"quality": 92})}


def encode(image, output_format: str) -> bytes:
    pil_format, options = FORMATS[output_format]
    buffer = io.BytesIO()
    image.save(buffer, format=pil_format, **options)
    return buffer.getvalue()


MIME = {"png": "image/png", "jpg": "image/jpeg"}


def save_images(job, images) -> list[str]:
    """Store the images under the job's unguessable prefix; return their storage names.

    With `base64` the hosted API's `.base64` text files (a data URL each) are stored beside them.
    """
    names = []
    for index, image in enumerate(images):
        data = encode(image, job.output_format)
        names.append(default_storage.save(job.output_name(index), ContentFile(data)))
        if job.params.get("base64"):
            data_url = f"data:{MIME[job.output_format]};base64,{base64.b64encode(data).decode()}"
            default_storage.save(job.output_name(index, "base64"), ContentFile(data_url.encode()))
    return names


THUMBNAIL_SIZE = (256, 256)


def save_thumbnail(job, image) -> str:
    """A small JPEG of the first output, made once on the worker for the dashboard and the gallery."""
    thumbnail = image.convert("RGB")
    thumbnail.thumbnail(THUMBNAIL_SIZE)
    return default_storage.save(f"thumbnails/{job.file_prefix}.jpg", ContentFile(encode(thumbnail, "jpg")))


def read_text(name: str) -> str:
    with default_storage.open(name, "rb") as handle:
        return handle.read().decode()


def absolute_url(base_url: str, name: str) -> str:
    url = default_storage.url(name)
    return url if url.startswith(("http://", "https://")) else base_url.rstrip("/") + url
