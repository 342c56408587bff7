"""The model library: weight files checked when they are added, the models a request chooses (checked
against the key's plan before anything is queued or charged), and the worker's local cache of files
kept in storage.

Only safetensors weights are accepted: a pickle file (.ckpt, .bin, .pt, .pth) is code, not data. Checks
read the files' headers (no torch): a checkpoint is an SDXL diffusers folder, a VAE a diffusers folder
with the default checkpoint's latent channels, a LoRA a file whose layers fit the default checkpoint's
UNet and text encoders, an embedding a file with `clip_l` and `clip_g` vectors of the text encoders'
widths, a ControlNet a diffusers ControlNetModel folder built for the default checkpoint's UNet, an
IP-Adapter a folder with its weights (one .safetensors file) and its CLIP image encoder (`image_encoder/`).
"""

import hashlib
import json
import math
import os
import shutil
import struct
import tempfile
from decimal import Decimal
from pathlib import Path

import onnx
from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q, Sum
from django.db.models.signals import post_delete
from django.dispatch import receiver
from google.protobuf.message import DecodeError

from generation.kinds.base import IP_ADAPTER_WEIGHTS, MAX_SIDE, InvalidInput, JobParams, deployment_model
from generation.models import LibraryModel

STORAGE_PREFIX = "storage:"
PICKLE_SUFFIXES = {".ckpt", ".bin", ".pt", ".pth", ".pkl", ".pickle"}
MAX_HEADER_BYTES = 8 * 1024 * 1024  # a full SDXL checkpoint's tensor table is under 1 MB
# bytes per element of each safetensors dtype
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8,
}  # fmt: skip
LORA_MARKERS = ("lora_A", "lora_B", "lora_down", "lora_up", "lora.down", "lora.up")

ModelType = LibraryModel.ModelType


class InvalidModelFile(Exception):
    """A file or folder that is not usable as its type of model (the message says why)."""


# 1. checking files -------------------------------------------------------------------------------


def read_header(handle, size: int) -> dict:
    """The tensor table of a safetensors file ({name: {"dtype", "shape", "data_offsets"}}), from an open
    binary file of `size` bytes, after checking that every tensor lies in the file with the bytes its
    dtype and shape need: a file that would fail to load (or read past its end) is refused here."""
    prefix = handle.read(8)
    if len(prefix) != 8:
        raise InvalidModelFile("not a safetensors file (too short)")
    (length,) = struct.unpack("<Q", prefix)
    if length > MAX_HEADER_BYTES or 8 + length > size:
        raise InvalidModelFile("not a safetensors file (header too large)")
    try:
        header = json.loads(handle.read(length))
    except (ValueError, RecursionError) as exc:
        raise InvalidModelFile("not a safetensors file (unreadable header)") from exc
    if not isinstance(header, dict):
        raise InvalidModelFile("not a safetensors file")
    header.pop("__metadata__", None)
    _check_layout(header, size - 8 - length)
    return header


def _check_layout(header: dict, data_bytes: int):
    """Each tensor's dtype and shape against its byte range, every range inside the data, none overlapping."""
    ranges = []
    for name, info in header.items():
        try:
            dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
            valid = dtype in DTYPE_BYTES and all(type(n) is int and n >= 0 for n in (*shape, start, end))
        except (TypeError, KeyError, ValueError):
            valid = False
        if not valid:
            raise InvalidModelFile(f"not a safetensors file (tensor {str(name)[:100]!r} is malformed)")
        if not start <= end <= data_bytes or end - start != math.prod(shape) * DTYPE_BYTES[dtype]:
            raise InvalidModelFile(f"is damaged: tensor {name[:100]!r} does not fit the file")
        ranges.append((start, end))
    ranges.sort()
    if any(previous_end > start for (_, previous_end), (start, _) in zip(ranges, ranges[1:])):
        raise InvalidModelFile("is damaged: its tensors overlap")


def _open(source: str):
    """An open binary file and its size: a local path, or `storage:<name>` in the configured storage."""
    if not source.startswith(STORAGE_PREFIX):
        handle = open(source, "rb")
        return handle, os.fstat(handle.fileno()).st_size
    try:
        handle = default_storage.open(source.removeprefix(STORAGE_PREFIX), "rb")
    except SuspiciousFileOperation as exc:
        raise InvalidModelFile("a storage name must stay inside the storage") from exc
    return handle, handle.size


def _file_header(source: str) -> dict:
    if not source.lower().endswith(".safetensors"):
        raise InvalidModelFile("weights must be a .safetensors file")
    try:
        handle, size = _open(source)
        with handle:
            return read_header(handle, size)
    except OSError as exc:
        raise InvalidModelFile(f"cannot be read ({exc.__class__.__name__})") from exc


def _folder(source: str) -> Path:
    folder = Path(source)
    if source.startswith(STORAGE_PREFIX) or not folder.is_dir():
        raise InvalidModelFile("must be a local diffusers folder")
    pickles = [p.name for p in folder.rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES]
    if pickles:
        raise InvalidModelFile(f"holds pickle files ({', '.join(sorted(pickles)[:3])}): only .safetensors weights")
    return folder


def _config(folder: Path, name: str) -> dict:
    try:
        return json.loads((folder / name).read_text())
    except (OSError, ValueError) as exc:
        raise InvalidModelFile(f"{name} is missing or unreadable") from exc


def _check_weights(folder: Path, parts: list[str]):
    for part in parts:
        files = list((folder / part).glob("*.safetensors")) if part else list(folder.glob("*.safetensors"))
        if not files:
            raise InvalidModelFile(f"{part or 'the folder'} has no .safetensors weights")
        for path in files:
            with open(path, "rb") as handle:
                read_header(handle, path.stat().st_size)


def _default_folder() -> Path:
    return Path(default_checkpoint().source)


def _check_checkpoint(source: str):
    folder = _folder(source)
    index = _config(folder, "model_index.json")
    if index.get("_class_name") != "StableDiffusionXLPipeline" or "text_encoder_2" not in index:
        raise InvalidModelFile("is not an SDXL diffusers folder (model_index.json)")
    unet = _config(folder, "unet/config.json")
    if unet.get("addition_embed_type") != "text_time":
        raise InvalidModelFile("its UNet is not an SDXL UNet")
    _check_weights(folder, ["unet", "vae", "text_encoder", "text_encoder_2"])


def _check_vae(source: str):
    folder = _folder(source)
    config = _config(folder, "config.json")
    expected = _config(_default_folder(), "vae/config.json").get("latent_channels", 4)
    if config.get("_class_name") != "AutoencoderKL" or config.get("latent_channels") != expected:
        raise InvalidModelFile(f"is not an SDXL VAE (AutoencoderKL with {expected} latent channels)")
    _check_weights(folder, [""])


# what a ControlNet shares with the UNet it steers (its residuals are added to that UNet's blocks)
CONTROLNET_UNET_FIELDS = (
    "in_channels",
    "block_out_channels",
    "layers_per_block",
    "transformer_layers_per_block",
    "cross_attention_dim",
    "addition_embed_type",
    "addition_time_embed_dim",
    "projection_class_embeddings_input_dim",
)


def _check_controlnet(source: str):
    folder = _folder(source)
    config = _config(folder, "config.json")
    if config.get("_class_name") != "ControlNetModel":
        raise InvalidModelFile("is not a diffusers ControlNet folder (config.json: ControlNetModel)")
    unet = _config(_default_folder(), "unet/config.json")
    for name in CONTROLNET_UNET_FIELDS:
        if config.get(name) != unet.get(name):
            raise InvalidModelFile(
                f"does not fit this SDXL: its {name} is {config.get(name)!r}, the UNet's {unet.get(name)!r}"
            )
    _check_weights(folder, [""])


def _check_ip_adapter(source: str):
    folder = _folder(source)
    encoder = _config(folder, "image_encoder/config.json")
    if "CLIPVisionModelWithProjection" not in encoder.get("architectures", []):
        raise InvalidModelFile("image_encoder/ is not a CLIPVisionModelWithProjection")
    _check_weights(folder, ["image_encoder"])
    path = folder / IP_ADAPTER_WEIGHTS
    if not path.is_file():
        raise InvalidModelFile(f"has no {IP_ADAPTER_WEIGHTS}")
    with open(path, "rb") as handle:
        header = read_header(handle, path.stat().st_size)
    keys = [name for name in header if name.startswith("ip_adapter.") and name.endswith(".to_k_ip.weight")]
    if not keys or not any(name.startswith("image_proj.") for name in header):
        raise InvalidModelFile("is not an IP-Adapter (no image_proj and ip_adapter layers)")
    width = _config(_default_folder(), "unet/config.json").get("cross_attention_dim")
    if any(header[name]["shape"][-1] != width for name in keys):
        raise InvalidModelFile(f"does not fit this SDXL: its layers are not of the UNet's width {width}")


def _check_segmentation(source: str):
    """An ONNX model (a protobuf graph: data, not code) that background removal can run with onnxruntime:
    onnx's checker passes it, it is one file (external data could name any file on the worker), every
    initializer holds the values its shape declares (none claims terabytes the file does not have) and its
    image input is 4-D with sides of at most SEGMENTATION_MAX_INPUT_SIDE."""
    if not source.lower().endswith(".onnx"):
        raise InvalidModelFile("a segmentation model must be an .onnx file (U2-Net, IS-Net)")
    try:
        handle, size = _open(source)
        with handle:
            if size > ONNX_MAX_BYTES:
                raise InvalidModelFile("is larger than a single-file ONNX model can be (2 GB)")
            model = onnx.load_model(handle, load_external_data=False)
    except OSError as exc:
        raise InvalidModelFile(f"cannot be read ({exc.__class__.__name__})") from exc
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise InvalidModelFile("is not an ONNX model") from exc
    for tensor in [*model.graph.initializer, *_constant_tensors(model.graph)]:
        if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
            raise InvalidModelFile("keeps its weights outside the .onnx file (external data): export it as one file")
        declared, held = math.prod(tensor.dims), _elements_held(tensor)
        if held is not None and declared != held:
            raise InvalidModelFile(f"declares {declared} values for {tensor.name!r} but holds {held}")
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, RuntimeError, ValueError) as exc:
        raise InvalidModelFile(f"is not a valid ONNX model ({str(exc).splitlines()[0][:200]})") from exc
    names = {tensor.name for tensor in model.graph.initializer}
    inputs = [entry for entry in model.graph.input if entry.name not in names]
    if not inputs:
        raise InvalidModelFile("has no image input")
    dims = inputs[0].type.tensor_type.shape.dim
    limit = settings.SEGMENTATION_MAX_INPUT_SIDE
    if len(dims) != 4:
        raise InvalidModelFile("its input is not an image batch (N x 3 x H x W)")
    if any(dim.HasField("dim_value") and dim.dim_value > limit for dim in dims[2:]):
        sides = "x".join(str(dim.dim_value) if dim.HasField("dim_value") else "?" for dim in dims[2:])
        raise InvalidModelFile(f"declares a {sides} input: at most {limit} a side (SEGMENTATION_MAX_INPUT_SIDE)")


ONNX_MAX_BYTES = 2**31  # protobuf's limit: a larger model needs external data, which is refused
# where a tensor's values are when they are not raw bytes, by its data type
TYPED_FIELDS = ("float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")


def _constant_tensors(graph):
    """The tensors of the graph's Constant nodes (values in the file, like initializers)."""
    return [
        attribute.t
        for node in graph.node
        if node.op_type == "Constant"
        for attribute in node.attribute
        if attribute.HasField("t")
    ]


def _elements_held(tensor) -> int | None:
    """How many values a tensor holds in the file (None for a type whose size cannot be told)."""
    if tensor.HasField("raw_data"):
        try:
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        except (KeyError, TypeError, ValueError):
            return None
        return len(tensor.raw_data) // itemsize if itemsize else None
    return sum(len(getattr(tensor, field)) for field in TYPED_FIELDS)


def _base_shapes() -> dict[str, list[int]]:
    """Weight shapes of the default checkpoint's UNet and text encoders, by diffusers' LoRA prefixes."""
    folder, shapes = _default_folder(), {}
    for prefix, part in (("unet", "unet"), ("text_encoder", "text_encoder"), ("text_encoder_2", "text_encoder_2")):
        for path in (folder / part).glob("*.safetensors"):
            with open(path, "rb") as handle:
                for name, info in read_header(handle, path.stat().st_size).items():
                    shapes[f"{prefix}.{name}"] = info["shape"]
    return shapes


def _check_lora(source: str):
    header = _file_header(source)
    if not header or not all(
        any(marker in name for marker in LORA_MARKERS) or name.endswith(".alpha") for name in header
    ):
        raise InvalidModelFile("is not a LoRA (its tensors are not LoRA layers)")
    base = _base_shapes()
    for name, info in header.items():
        if ".lora_A." in name or ".lora_B." in name:  # diffusers / peft names: check against the base layer
            layer = name.replace(".lora_A.", ".").replace(".lora_B.", ".").replace(".default", "")
            shape = base.get(layer)
            if shape is None:
                raise InvalidModelFile(f"does not fit this SDXL: no layer {layer}")
            side = shape[1] if ".lora_A." in name else shape[0]
            if info["shape"][1 if ".lora_A." in name else 0] != side:
                raise InvalidModelFile(f"does not fit this SDXL: {name} has shape {info['shape']}, the layer {shape}")


def _check_embedding(source: str):
    header = _file_header(source)
    folder = _default_folder()
    for key, encoder in (("clip_l", "text_encoder"), ("clip_g", "text_encoder_2")):
        width = _config(folder, f"{encoder}/config.json").get("hidden_size")
        shape = header.get(key, {}).get("shape")
        if not shape or len(shape) != 2 or shape[1] != width:
            raise InvalidModelFile(f"is not an SDXL embedding: needs {key} vectors of width {width}")


CHECKS = {
    ModelType.CHECKPOINT: _check_checkpoint,
    ModelType.VAE: _check_vae,
    ModelType.LORA: _check_lora,
    ModelType.EMBEDDING: _check_embedding,
    ModelType.CONTROLNET: _check_controlnet,
    ModelType.IP_ADAPTER: _check_ip_adapter,
    ModelType.SEGMENTATION: _check_segmentation,
}


def fingerprint(source: str) -> tuple[str, int]:
    """(SHA-256, bytes) of a file, or of a folder's files with their relative paths."""
    digest, size = hashlib.sha256(), 0
    if Path(source).is_dir():
        for path in sorted(p for p in Path(source).rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(source)).encode() + b"\0")
            with open(path, "rb") as handle:
                size += _digest(digest, handle)
    else:
        handle, _ = _open(source)
        with handle:
            size = _digest(digest, handle)
    return digest.hexdigest(), size


def _digest(digest, handle) -> int:
    """Feed an open file to `digest`; its size."""
    size = 0
    for chunk in iter(lambda: handle.read(1 << 20), b""):
        digest.update(chunk)
        size += len(chunk)
    return size


def check(source: str, model_type: str) -> tuple[str, int]:
    """Refuse `source` unless it is usable as `model_type`; its (SHA-256, bytes) when it is."""
    if Path(source).suffix.lower() in PICKLE_SUFFIXES:
        raise InvalidModelFile("pickle files (.ckpt, .bin, .pt, .pth) are code, not data: use .safetensors")
    CHECKS[model_type](source)
    return fingerprint(source)


def make_default(entry: LibraryModel):
    """`entry` becomes the default checkpoint (the previous one stops being it)."""
    LibraryModel.objects.filter(is_default=True).exclude(pk=entry.pk).update(is_default=False)


def upscaler_path(model_id: str) -> Path:
    """Where the official Real-ESRGAN weights of `model_id` are installed."""
    return Path(settings.UPSCALER_DIR) / f"{model_id}.pth"


def upscaler_state(model_id: str) -> str:
    """ "installed", "demo" (missing, and UPSCALER_DEMO lets a plain resize stand in) or "missing"."""
    if upscaler_path(model_id).exists():
        return "installed"
    return "demo" if settings.UPSCALER_DEMO else "missing"


# 2. what a request chooses -----------------------------------------------------------------------


def default_checkpoint() -> LibraryModel:
    """The checkpoint of requests that name none: the library's default, or (a library never edited)
    the deployment's SDXL_MODEL, registered as it is."""
    default = LibraryModel.objects.filter(is_default=True).first()
    if default is None:
        default, _ = LibraryModel.objects.get_or_create(
            is_default=True,
            defaults={
                "public_id": deployment_model(),
                "model_type": ModelType.CHECKPOINT,
                "name": deployment_model(),
                "source": str(settings.SDXL_MODEL),
            },
        )
    return default


def _entry(model_id: str, model_type: str, field: str, plan, user, found: dict) -> LibraryModel:
    """The model `field` names, if `user` may use it: another account's own model is answered like one
    that does not exist."""
    entry = found.get(model_id)
    if entry is None or entry.model_type != model_type or entry.owner_id not in (None, user.pk):
        raise InvalidInput(field, f"The {field.replace('_', ' ')} {model_id!r} does not exist.")
    allowed = {allowed.pk for allowed in entry.plans.all()}
    if allowed and plan.pk not in allowed:
        raise InvalidInput(field, f"Your plan cannot use the model {model_id!r}.")
    return entry


# the request field that names each type of model
FIELDS = {
    ModelType.LORA: "lora_model",
    ModelType.EMBEDDING: "embeddings_model",
    ModelType.VAE: "vae",
    ModelType.CONTROLNET: "controlnet_model",
    ModelType.IP_ADAPTER: "ip_adapter_id",
}


def choose(params: JobParams, plan, user) -> tuple[Decimal, bool]:
    """Check the models `params` name against the library, `plan` and `user`'s own models, and fill in the checkpoint (the
    default when none is named): (the credit multiplier of the models used, whether the checkpoint is
    the default one). InvalidInput names the field of an unknown or not-allowed model."""
    default = default_checkpoint()
    if params.runs_fast_model():
        _add_realtime_model(params)
    named = params.models_named()
    wanted = params.library_ids() | ({params.checkpoint} - {""})
    models = LibraryModel.objects.filter(public_id__in=wanted).prefetch_related("plans")
    found = {entry.public_id: entry for entry in models}
    found.setdefault(default.public_id, default)
    chosen = [_entry(params.checkpoint or default.public_id, ModelType.CHECKPOINT, "model_id", plan, user, found)]
    for model_type, field in FIELDS.items():
        chosen += [_entry(model_id, model_type, field, plan, user, found) for model_id in named.get(model_type, [])]
    params.checkpoint = chosen[0].public_id
    # a few-step model's own sampling: a LoRA's (an LCM-LoRA on any checkpoint), else the checkpoint's
    own = [entry for entry in chosen if entry.model_type == ModelType.LORA and entry.sampling] or chosen[:1]
    params.apply_sampling(own[0].own_sampling, own[0].public_id)
    return math.prod((entry.credit_multiplier for entry in chosen), start=Decimal(1)), chosen[0] == default


def _add_realtime_model(params: JobParams):
    """The realtime endpoints' fast model (REALTIME_MODEL): a checkpoint the request did not choose
    otherwise, or a LoRA (an LCM-LoRA, say) on the checkpoint it runs."""
    entry = find(settings.REALTIME_MODEL) if settings.REALTIME_MODEL else None
    if entry is None or entry.owner_id is not None:
        return
    if entry.model_type == ModelType.CHECKPOINT and not params.checkpoint:
        params.checkpoint = entry.public_id
    elif entry.model_type == ModelType.LORA and entry.public_id not in [lora["id"] for lora in params.loras]:
        params.loras = [{"id": entry.public_id, "strength": 1.0}, *params.loras]


def native_side(public_id: str) -> int:
    """The image side a library checkpoint was made for (SDXL's 1024; the demo model's 64), from its
    configs: the UNet's sample size times the VAE's scale."""
    entry = find(public_id) or default_checkpoint()
    folder = Path(entry.source)
    try:
        unet, vae = _config(folder, "unet/config.json"), _config(folder, "vae/config.json")
    except InvalidModelFile:
        return MAX_SIDE
    return int(unet.get("sample_size", 128)) * 2 ** (len(vae.get("block_out_channels", [0] * 4)) - 1)


def fill_operation_model(params: JobParams, plan, user):
    """The library model an operation runs without the request naming it (JobParams.operation_model):
    the configured one, else the first of its type the plan may use; InvalidInput says what an admin
    installs when there is none."""
    needed = params.operation_model
    if needed is None or getattr(params, needed.parameter):
        return
    configured = getattr(settings, needed.setting)
    models = [model for model in listed(plan, user) if model.model_type == needed.model_type]
    if not configured and not models:
        raise InvalidInput(needed.field, needed.missing)
    setattr(params, needed.parameter, configured or models[0].public_id)


def listed(plan, user) -> list[LibraryModel]:
    """The public models `plan` may use, and `user`'s own (trained) models."""
    default_checkpoint()
    models = LibraryModel.objects.filter(Q(is_public=True, owner=None) | Q(owner=user)).prefetch_related("plans")
    return [model for model in models if not model.plans.all() or plan in model.plans.all()]


# 3. the models accounts own (trained ones) -------------------------------------------------------


class OwnedQuotaFull(Exception):
    """An account's trained models would pass its plan's owned_models_quota_bytes."""

    def __init__(self, used: int, quota: int):
        super().__init__(used, quota)
        self.used, self.quota = used, quota


def owned_bytes(user) -> int:
    return LibraryModel.objects.filter(owner=user).aggregate(total=Sum("size_bytes"))["total"] or 0


def check_owned_quota(user, plan, adding: int = 0):
    """OwnedQuotaFull when `user`'s own models and `adding` bytes more pass the plan's quota."""
    used = owned_bytes(user)
    if used + adding > plan.owned_models_quota_bytes:
        raise OwnedQuotaFull(used, plan.owned_models_quota_bytes)


def add_owned(user, plan, public_id: str, stored_name: str, name: str) -> LibraryModel:
    """A trained LoRA (already in storage as `stored_name`) as `user`'s own library model, checked by
    the same validator as any LoRA an admin adds and counted against the plan's quota."""
    source = STORAGE_PREFIX + stored_name
    content_hash, size = check(source, ModelType.LORA)
    check_owned_quota(user, plan, adding=size)
    return LibraryModel.objects.create(
        public_id=public_id,
        model_type=ModelType.LORA,
        name=name[:200],
        source=source,
        content_hash=content_hash,
        size_bytes=size,
        owner=user,
        is_public=False,
    )


def stored_file(entry: LibraryModel) -> str | None:
    """The storage name of a model kept in storage (a trained one), else None."""
    return entry.source.removeprefix(STORAGE_PREFIX) if entry.source.startswith(STORAGE_PREFIX) else None


@receiver(post_delete, sender=LibraryModel, dispatch_uid="library-owned-files")
def _delete_owned_files(sender, instance: LibraryModel, **kwargs):
    """An owned model's file goes with it (its training deleted, its account closed); the library's own
    models keep theirs (an admin's files)."""
    if instance.owner_id and (name := stored_file(instance)):
        transaction.on_commit(lambda: default_storage.delete(name))


# 4. on the worker --------------------------------------------------------------------------------


def local_path(entry: LibraryModel) -> Path:
    """Where the worker reads `entry`'s weights: its local path, or for a storage object a copy in
    MODEL_CACHE_DIR named by its content hash (fetched once, so a replaced file is never served stale)."""
    if not entry.source.startswith(STORAGE_PREFIX):
        return Path(entry.source)
    cache = Path(settings.MODEL_CACHE_DIR)
    path = cache / f"{entry.content_hash}.safetensors"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        source, _ = _open(entry.source)
        with source, tempfile.NamedTemporaryFile(dir=cache, delete=False) as target:
            shutil.copyfileobj(source, target, 1 << 20)
        if fingerprint(target.name)[0] != entry.content_hash:
            Path(target.name).unlink()
            raise InvalidModelFile(f"{entry.public_id}: the stored file changed since it was checked")
        Path(target.name).replace(path)
    return path


def find(public_id: str) -> LibraryModel | None:
    return LibraryModel.objects.filter(public_id=public_id).first()


def find_all(public_ids) -> dict[str, LibraryModel]:
    return {entry.public_id: entry for entry in LibraryModel.objects.filter(public_id__in=list(public_ids))}
