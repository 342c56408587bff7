"""Writing generated images through Django's storage API and turning names into absolute URLs."""

import base64
import io
from datetime import timedelta

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from generation.models import Job

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


def _output_files(job, names: list[str], thumbnail: str) -> list[str]:
    """Images, their `.base64` twins and the thumbnail."""
    files = list(names)
    if job.params.get("base64"):
        files += [name.rsplit(".", 1)[0] + ".base64" for name in names]
    return files + ([thumbnail] if thumbnail else [])


def stored_names(job) -> list[str]:
    """Every file the job has in storage: outputs, their `.base64` twins, the thumbnail and the inputs."""
    inputs = [job.params[field] for field in ("init_image", "mask_image", "image") if job.params.get(field)]
    return _output_files(job, job.output_names, job.thumbnail_name) + inputs


def delete_outputs(job, names: list[str], thumbnail: str):
    """Delete images saved for a job that will not use them."""
    for name in _output_files(job, names, thumbnail):
        default_storage.delete(name)


def delete_files(job):
    """Delete the job's files from storage (missing ones are fine)."""
    for name in stored_names(job):
        default_storage.delete(name)


def expire_old_outputs(days: int) -> int:
    """Delete the files of jobs finished more than `days` days ago and mark those jobs expired."""
    cutoff = timezone.now() - timedelta(days=days)
    expired = 0
    for job in Job.objects.filter(finished_at__lt=cutoff, expired_at__isnull=True).iterator():
        delete_files(job)
        expired += Job.objects.filter(pk=job.pk, expired_at__isnull=True).update(expired_at=timezone.now())
    return expired
