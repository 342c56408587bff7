"""The OpenAI Images API at `/v1` (clients are given the base URL `http://host/v1` and an API key as
their OpenAI key): generations, edits (inpaint with a mask whose transparent pixels are repainted, else
img2img), variations (img2img without a prompt) and the models the key's plan may use."""

import base64
import re

from django.conf import settings
from rest_framework.response import Response

from billing import credits
from generation.answers import openai as openai_answers
from generation.frontends.base import BearerKey, FrontendView, GenerationFrontendView, Refused
from generation.infra import images
from generation.inputs import library
from generation.kinds.base import fit_size
from generation.kinds.img2img import Img2ImgSerializer
from generation.kinds.inpaint import InpaintSerializer
from generation.kinds.text2img import Text2ImgSerializer
from generation.models import LibraryModel

SIZE = re.compile(r"^\s*(\d{1,5})\s*x\s*(\d{1,5})\s*$", re.IGNORECASE)
RESPONSE_FORMATS = ("url", "b64_json")
OUTPUT_FORMATS = {"png": "png", "jpeg": "jpg", "jpg": "jpg", "webp": "png"}  # WebP is answered as PNG
MAX_IMAGES = 10  # OpenAI's bound for `n`; a plan's max_samples (and the hosted API's 4) make fewer
EDIT_STRENGTH = 1.0  # with a mask: the transparent part is painted anew
BASE64_ONLY_MODELS = re.compile(r"^gpt-image", re.IGNORECASE)  # OpenAI's models that always answer b64_json


class OpenAIView(FrontendView):
    answers = openai_answers
    answer_name = "openai"
    authentication_classes = [BearerKey]
    field_names = {
        "model_id": "model",
        "samples": "n",
        "width": "size",
        "height": "size",
        "init_image": "image",
        "mask_image": "mask",
        "quality": "quality",
    }

    def invalid_field(self, field, text):
        if field == "model_id":
            return openai_answers.error(404, text, param="model", code="model_not_found")
        return super().invalid_field(field, text)


class ImageRequest(GenerationFrontendView, OpenAIView):
    """What generations, edits and variations share: model, n, size, formats, quality."""

    def fields(self, data, size_default: str = "auto") -> dict:
        return {
            "model_id": _model(data.get("model")),
            "samples": _count(data.get("n")),
            **_size(data.get("size") or size_default),
            "quality": _quality(data.get("quality")),
            "output_format": _output_format(data.get("output_format")),
        }

    def options(self, data) -> dict:
        """`response_format` as OpenAI defaults it by model: b64_json for the gpt-image models (their only
        format), else url (dall-e-2, the default model, and dall-e-3: LibreChat's DALL-E tool reads `url`)."""
        default = "b64_json" if BASE64_ONLY_MODELS.match(str(data.get("model") or "")) else "url"
        response_format = data.get("response_format") or default
        if response_format not in RESPONSE_FORMATS:
            raise Refused(openai_answers.invalid("response_format", "response_format must be 'url' or 'b64_json'."))
        return {"response_format": response_format}


class GenerationsView(ImageRequest):
    def post(self, request):
        data = request.data
        submission = self.validated(Text2ImgSerializer, {"prompt": data.get("prompt"), **self.fields(data)})
        return self.generate(submission, self.options(data))


class EditsView(ImageRequest):
    def post(self, request):
        data = request.data
        uploads = request.FILES.getlist("image") or request.FILES.getlist("image[]")
        if not uploads:
            raise Refused(openai_answers.invalid("image", "image is required: a PNG, JPEG or WebP file."))
        fields = {
            "prompt": data.get("prompt"),
            **self.fields(data, size_default=""),
            "init_image": _data_url(uploads[0]),
        }
        if mask := request.FILES.get("mask"):
            fields.update(mask_image=_data_url(mask, "mask"), strength=EDIT_STRENGTH)
            submission = self.validated(InpaintSerializer, fields)
            _transparent_is_repaint(submission["inputs"]["mask_image"])
        else:
            submission = self.validated(Img2ImgSerializer, fields)
        return self.generate(submission, self.options(data))


class VariationsView(ImageRequest):
    def post(self, request):
        data = request.data
        upload = request.FILES.get("image")
        if upload is None:
            raise Refused(openai_answers.invalid("image", "image is required: a PNG, JPEG or WebP file."))
        fields = {"prompt": "variation", **self.fields(data, size_default=""), "init_image": _data_url(upload)}
        submission = self.validated(Img2ImgSerializer, fields)
        submission["params"].prompt = ""  # a variation has no prompt
        return self.generate(submission, self.options(data))


class ModelsView(OpenAIView):
    def get(self, request, model_id=None):
        checkpoints = [
            entry
            for entry in library.listed(credits.account_for(request.user, loaded=True).plan, request.user)
            if entry.model_type == LibraryModel.ModelType.CHECKPOINT
        ]
        if model_id is None:
            return Response(openai_answers.models(checkpoints))
        found = next((entry for entry in checkpoints if entry.public_id == model_id), None)
        if found is None:
            raise Refused(openai_answers.unknown_model(model_id))
        return Response(openai_answers.model(found))


def _model(value) -> str | None:
    """A library checkpoint id; absent or one of OpenAI's own model names: the default checkpoint."""
    model = str(value or "").strip()
    return None if not model or model in settings.OPENAI_MODEL_ALIASES else model


def _count(value) -> int:
    try:
        count = int(value if value not in (None, "") else 1)
    except (TypeError, ValueError, OverflowError):  # OverflowError: 1e999 is infinity in JSON
        count = 0
    if not 1 <= count <= MAX_IMAGES:
        raise Refused(openai_answers.invalid("n", f"n must be an integer from 1 to {MAX_IMAGES}."))
    return count


def _size(value) -> dict:
    """`"WxH"` (scaled down to fit in 1024 keeping its shape, multiples of 8), or `"auto"`:
    FRONTEND_DEFAULT_SIZE square; "" leaves the size to the input image."""
    text = str(value).strip().lower()
    if text == "":
        return {}
    if text == "auto":
        return {"width": settings.FRONTEND_DEFAULT_SIZE, "height": settings.FRONTEND_DEFAULT_SIZE}
    match = SIZE.match(text)
    if match is None or not (int(match[1]) and int(match[2])):
        raise Refused(openai_answers.invalid("size", "size must be 'auto' or 'WIDTHxHEIGHT', such as '1024x1024'."))
    width, height = fit_size(int(match[1]), int(match[2]))  # 1536x1024 keeps its shape: 1024x680
    return {"width": width, "height": height}


def _quality(quality) -> str:
    """OpenAI's quality, which the API turns into steps (OPENAI_QUALITY_STEPS; scaled on a fast model)."""
    quality = str(quality or "auto").strip().lower()
    if quality not in settings.OPENAI_QUALITY_STEPS:
        names = ", ".join(settings.OPENAI_QUALITY_STEPS)
        raise Refused(openai_answers.invalid("quality", f"quality must be one of {names}."))
    return quality


def _output_format(value) -> str:
    output_format = OUTPUT_FORMATS.get(str(value or "png").strip().lower())
    if output_format is None:
        raise Refused(openai_answers.invalid("output_format", "output_format must be png, jpeg or webp."))
    return output_format


def _read(upload, field: str) -> bytes:
    if upload.size > settings.INPUT_IMAGE_MAX_BYTES:
        raise Refused(openai_answers.invalid(field, f"The {field} file is too large."))
    return upload.read()


def _data_url(upload, field: str = "image") -> str:
    return "data:image/png;base64," + base64.b64encode(_read(upload, field)).decode()


def _transparent_is_repaint(mask: images.ImageSource):
    """OpenAI's mask (transparent = repaint) as this API's (white = repaint), made by the worker; a mask
    without transparency (its header says) is refused here."""
    if not mask.has_alpha:
        raise Refused(
            openai_answers.invalid("mask", "The mask must be a PNG with transparency (transparent = repaint).")
        )
    mask.treatments += ("alpha_mask",)
