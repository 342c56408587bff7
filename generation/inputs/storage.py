"""Files of jobs in Django's storage: input images, generated images, their `.base64` twins and
thumbnails; their absolute URLs; and retention."""

import base64
import io
import re
import uuid
import zipfile
from contextlib import suppress
from datetime import timedelta
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from PIL import Image

from generation.infra import images, safe_http
from generation.models import Job, Upload
from generation.queueing import queue

FORMATS = {"png": ("PNG", {"compress_level": 1}), "jpg": ("JPEG", {"quality": 92})}
MIME = {"png": "image/png", "jpg": "image/jpeg"}
THUMBNAIL_SIZE = (256, 256)
OUTPUT_NAME = re.compile(r"generations/[A-Za-z0-9_-]+\.(png|jpg|webp)")


class UploadQuotaFull(Exception):
    """An account's uploads would pass UPLOAD_QUOTA_BYTES."""

    def __init__(self, used: int, quota: int):
        super().__init__(used, quota)
        self.used, self.quota = used, quota


def encode(image, output_format: str) -> bytes:
    pil_format, options = FORMATS[output_format]
    buffer = io.BytesIO()
    image.save(buffer, format=pil_format, **options)
    return buffer.getvalue()


def save(name: str, data: bytes) -> str:
    """Store `data` under `name` (a free name beside it if taken), all or nothing: a write that fails
    half-way (a full disk) leaves no truncated file behind to be served. (An S3 upload is atomic anyway.)"""
    name = default_storage.get_available_name(name)
    try:
        return default_storage.save(name, ContentFile(data))
    except BaseException:
        _discard([name])
        raise


def _discard(names: list[str]):
    """Delete what a failed save left, without hiding why it failed."""
    for name in names:
        with suppress(Exception):
            default_storage.delete(name)


def store_input(source: images.ImageSource) -> str:
    """Save an input image for the worker as it came (the web tier decodes none); its storage name."""
    return save(f"inputs/{uuid.uuid4()}.{source.extension}", source.data)


def open_input(name: str, field: str, treatments=()) -> Image.Image:
    """A stored input image decoded, upright RGB, with the treatments its request asked for (the worker's
    side). ImageInputError when it cannot be (named after its request `field`)."""
    with default_storage.open(name, "rb") as handle:
        data = handle.read()
    return images.decode(data, field.replace("_", " "), treatments)


def save_images(job, images) -> list[str]:
    """Store the images under the job's unguessable prefix; return their storage names. All or none: when
    one cannot be stored, those already stored are deleted again.

    With `base64` the hosted API's `.base64` text files (a data URL each) are stored beside them.
    """
    names, stored = [], []
    with_base64 = job.params.get("base64")
    try:
        for index, image in enumerate(images):
            data = encode(image, job.output_format)
            names.append(save(job.output_name(index), data))
            stored.append(names[-1])
            if with_base64:
                data_url = f"data:{MIME[job.output_format]};base64,{base64.b64encode(data).decode()}"
                stored.append(save(job.output_name(index, "base64"), data_url.encode()))
    except BaseException:
        _discard(stored)
        raise
    return names


def save_thumbnail(job, image) -> str:
    """A small JPEG of the first output, made once on the worker for the dashboard and the gallery."""
    thumbnail = image.convert("RGB")
    thumbnail.thumbnail(THUMBNAIL_SIZE)
    return save(f"thumbnails/{job.file_prefix}.jpg", encode(thumbnail, "jpg"))


def hint_names(job) -> list[str]:
    """Where a ControlNet job's hints (the control images its models saw) are kept, one per model."""
    return [f"hints/{job.file_prefix}-{index}.png" for index in range(len(job.params.get("controlnets", [])))]


def save_hints(job, hints) -> list[str]:
    """Store a ControlNet job's hints (lossless); all or none, like its images."""
    stored = []
    try:
        for name, image in zip(hint_names(job), hints):
            stored.append(save(name, encode(image, "png")))
    except BaseException:
        _discard(stored)
        raise
    return stored


def save_preview(job, image) -> str:
    """A rough preview of the job's first image as it forms (a new name each time, so no cache shows
    an old one)."""
    return save(f"previews/{job.file_prefix}-{uuid.uuid4().hex[:8]}.jpg", encode(image, "jpg"))


def save_sample(job, image, step: int) -> str:
    """A sample image a training made at `step`, kept with the job's outputs (and deleted with them)."""
    return save(f"generations/{job.file_prefix}-sample-{step}.png", encode(image, "png"))


def save_model(job, path) -> str:
    """The model file a job made (a trained LoRA), stored for its owner's library entry."""
    with open(path, "rb") as handle:
        return save(f"trained/{job.file_prefix}.safetensors", handle.read())


# a long job's resumable state: each save is a folder of its own, made current by `latest` once whole
STATE_FOLDER = "states/{}"


def save_state(key: str, folder: Path):
    """Keep the files of `folder` as job `key`'s state, in place of the one kept before. A try that dies
    while saving leaves the previous state current."""
    base = STATE_FOLDER.format(key)
    previous = _current_state(key)
    version = uuid.uuid4().hex[:12]
    for path in sorted(Path(folder).iterdir()):
        save(f"{base}/{version}/{path.name}", path.read_bytes())
    with suppress(FileNotFoundError):
        default_storage.delete(f"{base}/latest")
    save(f"{base}/latest", version.encode())
    if previous:
        _delete_folder(f"{base}/{previous}")


def load_state(key: str, into: Path) -> Path | None:
    """Job `key`'s current state copied into the folder `into`; None when it has none."""
    version = _current_state(key)
    if not version:
        return None
    folder = f"{STATE_FOLDER.format(key)}/{version}"
    _, files = default_storage.listdir(folder)
    for name in files:
        (into / name).write_bytes(read_bytes(f"{folder}/{name}"))
    return into


def delete_state(key: str):
    """Forget job `key`'s state (its job has ended)."""
    base = STATE_FOLDER.format(key)
    with suppress(FileNotFoundError, NotADirectoryError):
        versions, _ = default_storage.listdir(base)
        for version in versions:
            _delete_folder(f"{base}/{version}")
    with suppress(FileNotFoundError):
        default_storage.delete(f"{base}/latest")


def _current_state(key: str) -> str:
    latest = read_bytes(f"{STATE_FOLDER.format(key)}/latest")
    return latest.decode().strip() if latest else ""


def _delete_folder(folder: str):
    with suppress(FileNotFoundError, NotADirectoryError):
        _, files = default_storage.listdir(folder)
        for name in files:
            default_storage.delete(f"{folder}/{name}")


def read_text(name: str) -> str:
    with default_storage.open(name, "rb") as handle:
        return handle.read().decode()


def base_url_for(request) -> str:
    """Scheme and host that output URLs and `fetch_result` of this request's jobs start with."""
    return settings.PUBLIC_BASE_URL or request.build_absolute_uri("/").rstrip("/")


def absolute_url(base_url: str, name: str) -> str:
    url = default_storage.url(name)
    return url if url.startswith(("http://", "https://")) else base_url.rstrip("/") + url


def own_output_name(url: str, base_url: str) -> str | None:
    """The storage name of an image this deployment generated, when `url` is its output URL (as this
    server or PUBLIC_BASE_URL hands them out); None for any other URL. Such an image is read from
    storage, not over the network ("send to img2img" on a local install, where loopback is refused)."""
    prefixes = {absolute_url(base, "generations/") for base in (base_url, settings.PUBLIC_BASE_URL) if base}
    plain = urlsplit(url)._replace(query="", fragment="").geturl()
    for prefix in prefixes:
        prefix = urlsplit(prefix)._replace(query="", fragment="").geturl()
        if plain.startswith(prefix):
            name = "generations/" + unquote(plain[len(prefix) :])
            return name if OUTPUT_NAME.fullmatch(name) else None
    return None


def read_bytes(name: str) -> bytes | None:
    """A stored file's bytes, or None when there is no such file."""
    try:
        with default_storage.open(name, "rb") as handle:
            return handle.read()
    except (FileNotFoundError, OSError):
        return None


def delivered_names(job, names: list[str]) -> list[str]:
    """Image names, or the `.base64` text files beside them when the client asked for base64."""
    if job.params.get("base64"):
        return [name.rsplit(".", 1)[0] + ".base64" for name in names]
    return names


def output_urls(job) -> list[str]:
    """The absolute URLs a client gets for the job's outputs."""
    return [absolute_url(job.base_url, name) for name in delivered_names(job, job.output_names)]


def _output_files(job, names: list[str], thumbnail: str) -> list[str]:
    """Images, their `.base64` twins, the thumbnail and a ControlNet job's hints."""
    files = list(names)
    if job.params.get("base64"):
        files += delivered_names(job, names)
    return files + ([thumbnail] if thumbnail else []) + hint_names(job)


def preview_url(job) -> str | None:
    """The latest preview of a running job, when its worker made one (None once the job has ended)."""
    running = job.status == Job.Status.RUNNING and job.preview_name
    return absolute_url(job.base_url, job.preview_name) if running else None


def input_names(job) -> list[str]:
    """The job's stored input images."""
    return list(job.parameters.input_names().values())


def stored_names(job) -> list[str]:
    """Every file the job has in storage: outputs, their `.base64` twins, the thumbnail, the inputs, a
    training's samples and a preview left by a worker that died mid-job."""
    preview = [job.preview_name] if job.preview_name else []
    samples = [sample["name"] for sample in job.details.get("samples", [])]
    return _output_files(job, job.output_names, job.thumbnail_name) + input_names(job) + samples + preview


def delete_outputs(job, names: list[str], thumbnail: str):
    """Delete images saved for a job that will not use them (what cannot be deleted is left)."""
    _discard(_output_files(job, names, thumbnail))


def delete_names(names: list[str]):
    for name in names:
        default_storage.delete(name)


def delete_files(job):
    """Delete the job's files from storage (missing ones are fine), and the answer that links them."""
    delete_names(stored_names(job))
    queue.forget_answer(job.id)


def seconds_kept(job) -> float:
    """Seconds until retention deletes the finished job's files (OUTPUT_RETENTION_DAYS)."""
    if job.finished_at is None:
        return 0.0
    return (job.finished_at + timedelta(days=settings.OUTPUT_RETENTION_DAYS) - timezone.now()).total_seconds()


def save_upload(user, source: images.ImageSource, base_url: str) -> tuple[Upload, str]:
    """Store a client's image as it came beside the outputs, once the account's UPLOAD_QUOTA_BYTES
    allows it; (the upload, its URL). UploadQuotaFull when it does not."""
    data = source.data
    with transaction.atomic():
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()  # one upload at a time
        used = Upload.objects.filter(user=user).aggregate(total=Sum("size_bytes"))["total"] or 0
        if used + len(data) > settings.UPLOAD_QUOTA_BYTES:
            raise UploadQuotaFull(used, settings.UPLOAD_QUOTA_BYTES)
        name = save(f"generations/{uuid.uuid4()}-upload.{source.extension}", data)
        upload = Upload.objects.create(user=user, name=name, size_bytes=len(data))
    return upload, absolute_url(base_url, name)


def expire_uploads(days: int) -> int:
    """Delete the uploads stored more than `days` days ago."""
    old = Upload.objects.filter(created_at__lt=timezone.now() - timedelta(days=days))
    for upload in old:
        default_storage.delete(upload.name)
    return old.delete()[0]


def expire_old_outputs(days: int) -> int:
    """Delete the files (outputs and inputs) of jobs finished more than `days` days ago and mark those
    jobs expired."""
    cutoff = timezone.now() - timedelta(days=days)
    expired = 0
    for job in Job.objects.filter(finished_at__lt=cutoff, expired_at__isnull=True).iterator():
        delete_files(job)
        expired += Job.objects.filter(pk=job.pk, expired_at__isnull=True).update(expired_at=timezone.now())
    return expired


ARCHIVE_IMAGES = (".png", ".jpg", ".jpeg", ".webp")


def fetch_archive(source: images.ImageSource) -> list[images.ImageSource]:
    """The images of a .zip (a training's photos), each checked from its header like any input image.
    Bounded before anything is unpacked: its bytes, its entries, each entry's bytes (as declared and as
    read, so no zip bomb unpacks past them); entries that are not images (captions, folders) are skipped."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(_download(source, settings.TRAINING_ZIP_MAX_BYTES)))
        entries = [entry for entry in archive.infolist() if _is_archived_image(entry)]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise images.ImageInputError(f"The {source.label} is not a readable .zip file.") from exc
    if len(entries) > settings.TRAINING_ZIP_MAX_ENTRIES:
        raise images.ImageInputError(
            f"The {source.label} holds {len(entries)} images: at most {settings.TRAINING_ZIP_MAX_ENTRIES}."
        )
    found = []
    for entry in entries:
        member = images.ImageSource(source.field, name=f"{entry.filename!r} in {source.label}")
        if entry.file_size > settings.INPUT_IMAGE_MAX_BYTES:
            raise images.ImageInputError(f"The image {member.label} is too large.")
        try:
            with archive.open(entry) as handle:
                data = handle.read(settings.INPUT_IMAGE_MAX_BYTES + 1)
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
            raise images.ImageInputError(f"The image {member.label} cannot be unpacked.") from exc
        if len(data) > settings.INPUT_IMAGE_MAX_BYTES:
            raise images.ImageInputError(f"The image {member.label} is too large.")
        found.append(images.inspect(member, data))
    return found


def _is_archived_image(entry: zipfile.ZipInfo) -> bool:
    name = PurePosixPath(entry.filename)
    hidden = any(part.startswith((".", "__MACOSX")) for part in name.parts)
    return not entry.is_dir() and not hidden and name.suffix.lower() in ARCHIVE_IMAGES


def fetch(source: images.ImageSource) -> images.ImageSource:
    """`source` with its image: read from storage when it is one of our outputs, else fetched; checked
    from its header (an inline image already was)."""
    if source.data is not None:
        return source
    if source.stored:
        data = read_bytes(source.stored)
        if data is None:
            raise images.ImageInputError(f"The {source.label} could not be fetched (no such image here).")
        return images.inspect(source, data)
    return images.inspect(source, _download(source, settings.INPUT_IMAGE_MAX_BYTES))


def _download(source: images.ImageSource, max_bytes: int) -> bytes:
    """The body behind `source.url`, fetched SSRF-safe and bounded; ImageInputError says why not."""
    try:
        response = safe_http.request("GET", source.url, max_bytes=max_bytes)
    except safe_http.UnsafeURL as exc:
        raise images.ImageInputError(f"The {source.label} could not be fetched ({exc}).") from exc
    if response.status != 200:
        raise images.ImageInputError(f"The {source.label} could not be fetched (HTTP {response.status}).")
    return response.content
