"""The AUTOMATIC1111 web UI API at `/sdapi/v1` (A1111's `--api --api-auth`: HTTP Basic with the API key
as the password): txt2img and img2img (with inpainting), `<lora:id:weight>` in prompts, the model
library as A1111 lists models, options per key, progress with the live preview, interrupt, and the
upscaler as extra-single-image."""

import re

from django.http import HttpResponse
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.keys import set_default_checkpoint
from billing import credits
from generation import services
from generation.answers import a1111 as a1111_answers
from generation.answers import selectors
from generation.frontends.base import BasicOrBearerKey, FrontendView, GenerationFrontendView, Refused
from generation.inputs import library, storage
from generation.kinds import schedulers
from generation.kinds.base import UPSCALE_MODELS, fit_size, scheduler_option_fields
from generation.kinds.img2img import Img2ImgSerializer
from generation.kinds.inpaint import InpaintSerializer
from generation.kinds.super_resolution import SuperResolutionSerializer
from generation.kinds.text2img import IMAGE_RESIZERS, LATENT_UPSCALE_MODES, Text2ImgSerializer
from generation.models import LibraryModel

LORA_TAG = re.compile(r"<lora:([^:>]+)(?::([^>]*))?>", re.IGNORECASE)
DEFAULT_SAMPLER = "Euler"  # what A1111's API runs when a request names none (its `sampler_index` default)
MAX_IMAGES = 4
# left out of the `parameters` echoed back: images, and the credentials SillyTavern puts in its body
UNECHOED_FIELDS = ("init_images", "mask", "image", "auth", "url")
MAX_ECHOED_TEXT = 20000
HIRES_FIELDS = ("enable_hr", "hr_scale", "hr_upscaler", "hr_second_pass_steps", "hr_resize_x", "hr_resize_y")


class A1111View(FrontendView):
    answers = a1111_answers
    answer_name = "a1111"
    authentication_classes = [BasicOrBearerKey]
    field_names = {
        "model_id": "override_settings.sd_model_checkpoint",
        "lora_model": "prompt",
        "num_inference_steps": "steps",
        "guidance_scale": "cfg_scale",
        "samples": "batch_size",
        "scheduler": "sampler_name",
        "init_image": "init_images",
        "mask_image": "mask",
        "strength": "denoising_strength",
        "url": "image",
    }

    def plan_models(self, model_type: str) -> list[LibraryModel]:
        plan = credits.account_for(self.request.user, loaded=True).plan
        return [entry for entry in library.listed(plan, self.request.user) if entry.model_type == model_type]


class GenerateView(GenerationFrontendView, A1111View):
    """txt2img and img2img: A1111's fields translated into the hosted API's."""

    def fields(self, data) -> tuple[dict, list]:
        """The hosted API's fields for this request, and what its sampler and schedule type could only
        approximate ({"field", "reason"}: named in the answer's info)."""
        prompt, loras = _without_lora_tags(str(data.get("prompt") or ""))
        sampling = _sampling(data)
        batch = _integer(data, "batch_size", 1, minimum=1) * _integer(data, "n_iter", 1, minimum=1)
        if not 1 <= batch <= MAX_IMAGES:
            raise Refused(a1111_answers.invalid("batch_size", f"batch_size x n_iter must be 1-{MAX_IMAGES}."))
        fields = {
            "prompt": prompt,
            "negative_prompt": data.get("negative_prompt") or "",
            "seed": data.get("seed", -1),
            "num_inference_steps": data.get("steps"),
            "guidance_scale": data.get("cfg_scale"),
            **_size(data),
            "samples": batch,
            "scheduler": sampling.scheduler,
            **scheduler_option_fields(sampling.options),
            "model_id": self._checkpoint(data),
        }  # steps and cfg_scale left out: the model's own (a few-step model's), else the API's 30 and 7.5
        if loras:
            fields.update(lora_model=",".join(name for name, _ in loras), lora_strength=",".join(w for _, w in loras))
        return fields, sampling.not_applied

    def submit(self, serializer_class, fields: dict, notes: list, data) -> Response:
        submission = self.validated(serializer_class, fields)
        submission["params"].not_applied += notes
        return self.generate(submission, self.options(data))

    def _checkpoint(self, data) -> str | None:
        overrides = data.get("override_settings") or {}
        chosen = overrides.get("sd_model_checkpoint") if isinstance(overrides, dict) else None
        return _model_id(chosen) if chosen else (self.request.auth.default_checkpoint or None)

    def options(self, data) -> dict:
        sampler = data.get("sampler_name") or data.get("sampler_index") or DEFAULT_SAMPLER
        return {
            "sampler_name": str(sampler),
            "scheduler": str(data.get("scheduler") or "Automatic"),
            "batch_size": _integer(data, "batch_size", 1),
            "n_iter": _integer(data, "n_iter", 1),
            "send_images": data.get("send_images", True) is not False,
            "parameters": _echoed(data),
        }


class Txt2ImgView(GenerateView):
    def post(self, request):
        data = request.data
        fields, notes = self.fields(data)
        fields.update((name, data[name]) for name in (*HIRES_FIELDS, "denoising_strength") if name in data)
        return self.submit(Text2ImgSerializer, fields, notes, data)


class Img2ImgView(GenerateView):
    def post(self, request):
        data = request.data
        init_images = data.get("init_images") or []
        if not isinstance(init_images, list) or not init_images:
            raise Refused(a1111_answers.invalid("init_images", "init_images needs one base64 image."))
        fields, notes = self.fields(data)
        fields.update(init_image=init_images[0], strength=data.get("denoising_strength", 0.75))
        if not data.get("mask"):
            return self.submit(Img2ImgSerializer, fields, notes, data)
        submission = self.validated(InpaintSerializer, {**fields, "mask_image": data["mask"]})
        submission["params"].not_applied += notes
        mask = submission["inputs"]["mask_image"]  # A1111's mask options, done by the worker as A1111 does them
        if data.get("inpainting_mask_invert") in (1, True, "1"):
            mask.treatments += ("invert",)
        if blur := _integer(data, "mask_blur", 4, minimum=0):
            mask.treatments += (f"blur:{blur}",)
        return self.generate(submission, self.options(data))


class ExtraSingleImageView(GenerationFrontendView, A1111View):
    def post(self, request):
        data = request.data
        upscaler = data.get("upscaler_1") if data.get("upscaler_1") in UPSCALE_MODELS else UPSCALE_MODELS[0]
        fields = {"url": data.get("image"), "scale": data.get("upscaling_resize", 2), "model_id": upscaler}
        return self.generate(self.validated(SuperResolutionSerializer, fields), {"upscaled": True})


class ModelsView(A1111View):
    def get(self, request):
        return Response([_sd_model(entry) for entry in self.plan_models(LibraryModel.ModelType.CHECKPOINT)])


class OptionsView(A1111View):
    """The options A1111 clients read and set; `sd_model_checkpoint` is this key's default checkpoint."""

    def get(self, request):
        checkpoint = request.auth.default_checkpoint or library.default_checkpoint().public_id
        entry = library.find(checkpoint) or library.default_checkpoint()
        return Response(
            {
                "sd_model_checkpoint": _sd_model(entry)["title"],
                "sd_checkpoint_hash": entry.content_hash,
                "sd_vae": "Automatic",
                "CLIP_stop_at_last_layers": 1,
                "samples_format": "png",
                "save_images": True,
            }
        )

    def post(self, request):
        wanted = request.data.get("sd_model_checkpoint")
        if wanted:
            public_id = _model_id(wanted)
            if public_id not in {entry.public_id for entry in self.plan_models(LibraryModel.ModelType.CHECKPOINT)}:
                raise Refused(a1111_answers.invalid("sd_model_checkpoint", f"Unknown checkpoint {wanted!r}."))
            set_default_checkpoint(request.auth, public_id)
        return null_answer()


class SamplersView(A1111View):
    def get(self, request):
        return Response(
            [
                {"name": sampler.name, "aliases": list(sampler.aliases), "options": sampler.listed_options}
                for sampler in schedulers.SAMPLERS
            ]
        )


class SchedulersView(A1111View):
    def get(self, request):
        return Response(
            [
                {
                    "name": schedule.name,
                    "label": schedule.label,
                    "aliases": list(schedule.aliases) if schedule.aliases else None,
                    "default_rho": schedule.default_rho,
                    "need_inner_model": schedule.need_inner_model,
                }
                for schedule in schedulers.SCHEDULES
            ]
        )


class UpscalersView(A1111View):
    """The resizers, then the library's Real-ESRGAN networks (also the hires fix's `hr_upscaler`)."""

    def get(self, request):
        scales = {"RealESRGAN_x2plus": 2}
        resizers = [
            {"name": name, "model_name": None, "model_path": None, "model_url": None, "scale": 4}
            for name in IMAGE_RESIZERS
        ]
        return Response(
            resizers
            + [
                {"name": name, "model_name": name, "model_path": None, "model_url": None, "scale": scales.get(name, 4)}
                for name in UPSCALE_MODELS
            ]
        )


class LatentUpscaleModesView(A1111View):
    def get(self, request):
        return Response([{"name": name} for name in LATENT_UPSCALE_MODES])


class VaesView(A1111View):
    def get(self, request):
        return Response(
            [{"model_name": entry.public_id, "filename": entry.public_id} for entry in self.plan_models("vae")]
        )


class LorasView(A1111View):
    def get(self, request):
        return Response(
            [
                {"name": entry.public_id, "alias": entry.public_id, "path": entry.public_id, "metadata": {}}
                for entry in self.plan_models("lora")
            ]
        )


class EmbeddingsView(A1111View):
    def get(self, request):
        loaded = {
            entry.public_id: {
                "step": None,
                "sd_checkpoint": None,
                "sd_checkpoint_name": None,
                "shape": None,
                "vectors": None,
            }
            for entry in self.plan_models("embedding")
        }
        return Response({"loaded": loaded, "skipped": {}})


class ProgressView(A1111View):
    """This key's job in flight: its steps, ETA and live preview (as base64)."""

    def get(self, request):
        jobs = selectors.key_jobs_in_flight(request.auth)
        job = next((job for job in jobs if job.status == job.Status.RUNNING), jobs[0] if jobs else None)
        if job is None:
            return Response(a1111_answers.progress(None, 0, 0, None, None))
        preview = storage.read_bytes(job.preview_name) if job.preview_name else None
        body = a1111_answers.progress(job, job.progress_step, job.progress_total, selectors.eta_seconds(job), preview)
        body["state"]["job_count"] = len(jobs)
        return Response(body)


class InterruptView(A1111View):
    """interrupt and skip: this key's jobs in flight are canceled (and refunded)."""

    def post(self, request):
        for job in selectors.key_jobs_in_flight(request.auth):
            services.cancel_job(user=request.user, job_id=job.id)
        return Response({})


class EmptyListView(A1111View):
    """Listings of what this deployment has none of (hypernetworks, face restorers, ...): empty, as an
    A1111 without them answers."""

    def get(self, request):
        return Response([])


class RefreshView(A1111View):
    """refresh-checkpoints, refresh-loras, ...: the library is read afresh on every request anyway."""

    def post(self, request):
        return null_answer()


def null_answer() -> HttpResponse:
    """JSON `null`, as A1111 answers a setter (DRF would send an empty body, which clients fail to parse)."""
    return HttpResponse(b"null", content_type="application/json")


class PingView(APIView):
    """`GET /internal/ping`: A1111's liveness answer, which clients ask before connecting (no key)."""

    authentication_classes = []
    permission_classes = []

    def get(self, request):
        return Response({})


class CmdFlagsView(A1111View):
    def get(self, request):
        return Response({"api": True, "api_auth": True, "nowebui": True, "listen": True, "medvram": False})


class ScriptsView(A1111View):
    def get(self, request):
        return Response({"txt2img": [], "img2img": []})


def _echoed(data) -> dict:
    """The request's plain fields, as A1111 echoes them in `parameters`: no images, no script arguments
    (which may carry images), no text longer than a prompt."""
    plain = (bool, int, float, type(None))
    return {
        name: value
        for name, value in data.items()
        if name not in UNECHOED_FIELDS
        and (isinstance(value, plain) or (isinstance(value, str) and len(value) <= MAX_ECHOED_TEXT))
    }


def _sd_model(entry: LibraryModel) -> dict:
    short = entry.content_hash[:10]
    return {
        "title": f"{entry.public_id} [{short}]" if short else entry.public_id,
        "model_name": entry.public_id,
        "hash": short or None,
        "sha256": entry.content_hash or None,
        "filename": entry.public_id,
        "config": None,
    }


def _model_id(title: str) -> str:
    """A checkpoint's id from what A1111 clients send: the id, or its title `id [hash]`."""
    return re.sub(r"\s*\[[0-9a-f]*\]\s*$", "", str(title).strip())


def _without_lora_tags(prompt: str) -> tuple[str, list[tuple[str, str]]]:
    """The prompt without its `<lora:id:weight>` tags, and the LoRAs they name (weight default 1)."""
    loras = [(name.strip(), (weight or "1").strip() or "1") for name, weight in LORA_TAG.findall(prompt)]
    return re.sub(r"\s{2,}", " ", LORA_TAG.sub("", prompt)).strip(" ,"), loras


def _size(data) -> dict:
    """Width and height scaled down to fit in 1024 keeping their shape (SDXL's 832x1216 becomes 696x1024,
    not a squashed 832x1024)."""
    width, height = _integer(data, "width", 512), _integer(data, "height", 512)
    if min(width, height) < 1:
        raise Refused(a1111_answers.invalid("width", "width and height must be positive."))
    fitted = fit_size(width, height)
    return {"width": fitted[0], "height": fitted[1]}


def _integer(data, name: str, default: int, minimum: int | None = None) -> int:
    """A whole number the request gave (`default` when absent); at least `minimum` when one is set."""
    try:
        value = int(data.get(name, default))
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: 1e999 is infinity in JSON
        raise Refused(a1111_answers.invalid(name, f"{name} must be an integer.")) from exc
    if minimum is not None and value < minimum:
        raise Refused(a1111_answers.invalid(name, f"{name} must be at least {minimum}."))
    return value


def _sampling(data) -> schedulers.Sampling:
    """The hosted API's scheduler fields for A1111's `sampler_name` + `scheduler`: any listed sampler with
    any listed schedule type (and the older combined names), as A1111 1.10 reads them. What diffusers can
    only approximate is named in the answer (`info`'s not_applied); an unknown name is a 422 listing them."""
    sampler, schedule = data.get("sampler_name") or data.get("sampler_index"), data.get("scheduler")
    sampling = schedulers.a1111(sampler, schedule, DEFAULT_SAMPLER)
    if sampling is not None:
        return sampling
    if schedulers.a1111(None, schedule, DEFAULT_SAMPLER) is None:
        names = ", ".join(schedule.label for schedule in schedulers.SCHEDULES)
        raise Refused(
            a1111_answers.invalid("scheduler", f"Unknown scheduler {schedule!r}; the schedulers are {names}.")
        )
    names = ", ".join(sampler.name for sampler in schedulers.SAMPLERS)
    raise Refused(a1111_answers.invalid("sampler_name", f"Unknown sampler {sampler!r}; the samplers are {names}."))


# A1111's endpoints under /sdapi/v1/ (generation/urls.py serves them)
ROUTES = {
    "txt2img": Txt2ImgView,
    "img2img": Img2ImgView,
    "extra-single-image": ExtraSingleImageView,
    "sd-models": ModelsView,
    "options": OptionsView,
    "samplers": SamplersView,
    "schedulers": SchedulersView,
    "upscalers": UpscalersView,
    "latent-upscale-modes": LatentUpscaleModesView,
    "sd-vae": VaesView,
    "loras": LorasView,
    "embeddings": EmbeddingsView,
    "progress": ProgressView,
    "interrupt": InterruptView,
    "skip": InterruptView,
    "cmd-flags": CmdFlagsView,
    "scripts": ScriptsView,
    **{name: EmptyListView for name in ("hypernetworks", "face-restorers", "prompt-styles", "sd-modules")},
    **{name: RefreshView for name in ("refresh-checkpoints", "refresh-loras", "refresh-vae", "reload-checkpoint")},
}
