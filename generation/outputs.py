"""Writing generated images through Django's storage API and turning names into absolute URLs."""

import io

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

FORMATS = {"png": ("PNG", {"compress_level": 1}), "jpg": ("JPEG", {"quality": 92})}


def encode(image, output_format: str) -> bytes:
    pil_format, options = FORMATS[output_format]
    buffer = io.BytesIO()
    image.save(buffer, format=pil_format, **options)
    return buffer.getvalue()


def save_images(job, images) -> list[str]:
    """Store the images under the job's unguessable prefix; return their storage names."""
    names = []
    for index, image in enumerate(images):
        name = default_storage.save(job.output_name(index), ContentFile(encode(image, job.output_format)))
        names.append(name)
    return names


def absolute_url(base_url: str, name: str) -> str:
    url = default_storage.url(name)
    return url if url.startswith(("http://", "https://")) else base_url.rstrip("/") + url
