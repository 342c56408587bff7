"""What the request serializers of every kind share: lenient input in, typed job parameters out.

Validation does no I/O: an image given by URL is only checked here and fetched once the request is
admitted (services.request_generation); an inline (base64) image is decoded. `validated_data` is
{"params": JobParams, "inputs": {parameter field: images.ImageSource}, "instant": bool,
"idempotency_key": str}. Request fields named apart from their parameter (`model_id` -> `checkpoint`,
`lora_model` + `lora_strength` -> `loras`, `num_inference_steps` -> `steps`, ...) are read here and
written back by each kind's `request_fields()`.
"""

import math
import secrets

from django.conf import settings
from rest_framework import serializers

from generation.infra import safe_http
from generation.kinds import sampling, schedulers
from generation.kinds.base import (
    MAX_SIDE,
    InvalidInput,
    deployment_model,
    deployment_vae,
    fit_within,
)
from generation.kinds.fields import (
    InputImageField,
    LenientBooleanField,
    LenientChoiceField,
    LenientNumberField,
    LenientTextField,
    ScalarField,
    UpscaleField,
)

MAX_SEED = 2**32 - 1
MAX_REQUESTED_SIDE = 16384  # a side asked for beyond this is clamped before the size is fitted
MAX_LORA_STRENGTH = 4.0
DEFAULT_STEPS, DEFAULT_GUIDANCE = 30, 7.5


def random_seed(seed: int | None) -> int:
    """The seed asked for, or a random one when none (or a negative one) was."""
    return seed if seed is not None and seed >= 0 else secrets.randbelow(MAX_SEED + 1)


def comma_list(text: str | None) -> list[str]:
    """A comma-separated field's values (library ids, one value per model, ...)."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def per_model(text: str | None, count: int, field: str, default, parse=str) -> list:
    """A comma-separated field with one value for all `count` models or one per model (`default` when
    empty). InvalidInput names `field` when the values do not parse or do not match the models."""
    try:
        values = [parse(value) for value in comma_list(text)] or [default]
    except ValueError as exc:
        raise InvalidInput(
            field, f"The {_label(field)} must be a number or a comma-separated list of numbers."
        ) from exc
    if len(values) == 1:
        values *= count
    if len(values) != count:
        raise InvalidInput(field, f"The {_label(field)} must be one value, or one per model.")
    return values


def _label(field: str) -> str:
    return field.replace("_", " ")


def number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _loras(lora_model: str | None, lora_strength: str | None) -> list[dict]:
    """`lora_model` ids with their `lora_strength`: one value for all, or one per LoRA (default 1)."""
    ids = comma_list(lora_model)
    if repeated := next((lora for index, lora in enumerate(ids) if lora in ids[:index]), None):
        raise InvalidInput("lora_model", f"The LoRA {repeated!r} is named more than once.")
    strengths = per_model(lora_strength, len(ids), "lora_strength", 1.0, number)
    clamped = (min(MAX_LORA_STRENGTH, max(-MAX_LORA_STRENGTH, value)) for value in strengths)
    return [{"id": lora, "strength": strength} for lora, strength in zip(ids, clamped)]


def library_fields(data: dict, model_library: bool) -> dict:
    """The parameters set by request fields of another name (`data`: a generation serializer's validated
    values). The model fields choose from the library only on the paths that do (`model_library`)."""
    values = {"steps": data["steps"] or data["num_inference_steps"] or _quality_steps(data) or DEFAULT_STEPS}
    if model_library:
        values.update(
            checkpoint=(data["model_id"] or "").strip(),
            loras=_loras(data["lora_model"], data["lora_strength"]),
            embeddings=comma_list(data["embeddings_model"]),
            vae_id=(data["vae"] or "").strip(),
            ip_adapter_id=(data["ip_adapter_id"] or "").strip(),
            ip_adapter_scale=float(data["ip_adapter_scale"] if data["ip_adapter_scale"] is not None else 0.6),
        )
    return values


def _quality_steps(data: dict) -> int | None:
    """The steps OpenAI's `quality` stands for on the default model (OPENAI_QUALITY_STEPS)."""
    return settings.OPENAI_QUALITY_STEPS.get(data["quality"]) if data["quality"] else None


def sampling_asked(data: dict) -> list[str]:
    """The sampling fields the request set itself: a library model's own sampling fills the others."""
    given = {
        sampling.STEPS: data["steps"] or data["num_inference_steps"],
        sampling.GUIDANCE: data["guidance_scale"],
        sampling.SCHEDULER: data["scheduler"] or scheduler_options(data),
        sampling.ETA: data["eta"],
    }
    return [name for name, value in given.items() if value not in (None, "", {})]


NOT_APPLIED = "Not applied here (listed in meta.not_applied)."


class JobSerializer(serializers.Serializer):
    """Fields every kind of job accepts: delivery and request options."""

    webhook = LenientTextField(
        max_length=2000,
        required=False,
        default=None,
        help_text="A public http(s) URL that gets the finished job's answer, signed (Standard Webhooks and X-Signature).",
    )
    track_id = ScalarField(default=None, help_text="Any value, echoed in the webhook delivery.")
    instant_response = LenientBooleanField(
        default=False, help_text='"yes": answer "processing" at once instead of waiting up to GENERATION_WAIT_SECONDS.'
    )
    idempotency_key = LenientTextField(
        max_length=200,
        required=False,
        default="",
        help_text="A retry with the same key within 24 h gets the original job (also the Idempotency-Key header).",
    )

    def validate_webhook(self, url):
        """A syntactically usable http(s) URL (its address is checked before the job is admitted)."""
        if url is None:
            return None
        try:
            safe_http.split_url(url.strip())
        except safe_http.UnsafeURL as exc:
            raise serializers.ValidationError("The webhook must be a valid URL.") from exc
        return url.strip()

    def submission(self, data, params, inputs=None) -> dict:
        params.webhook, params.track_id = data["webhook"], data["track_id"]
        return {
            "params": params,
            "inputs": inputs or {},
            "instant": data["instant_response"],
            "idempotency_key": data["idempotency_key"],
        }


OUTPUT_FORMATS = {"png": "png", "jpg": "jpg", "jpeg": "jpg"}


def reason(field: str, why: str) -> dict:
    """A request field understood but not applied, and why (an entry of meta.not_applied)."""
    return {"field": field, "reason": why}


MODEL_FIELDS = (
    "model_id",
    "lora_model",
    "lora_strength",
    "embeddings_model",
    "vae",
    "ip_adapter_id",
    "ip_adapter_scale",
    "ip_adapter_image",
)


def not_applied(data: dict, model_library: bool = False) -> list[dict]:
    """The documented fields of this request that this deployment understood but did not apply, each with
    a one-line reason. A field that is applied is never named. The model fields are applied on the paths
    that choose models (`model_library`); v3 requests use the deployment's default model."""
    model, vae = deployment_model(), deployment_vae()
    library = "v3 requests use the deployment's default model; the v4, v6, v7 and v1 paths choose models"
    checks = [
        (
            "tomesd",
            data.get("tomesd"),
            "token merging (tomesd) patches Stable Diffusion 1.x UNets and is not correct for SDXL",
        ),
        (
            "panorama",
            data.get("panorama"),
            "panorama (tiled MultiDiffusion) is not available for SDXL here; the image has the requested size",
        ),
        (
            "multi_lingual",
            data.get("multi_lingual"),
            "no translation model is installed; the prompt is used as written",
        ),
        ("face_enhance", data.get("face_enhance"), "no face restoration model is installed"),
        (
            "temp",
            data.get("temp"),
            f"outputs are kept for OUTPUT_RETENTION_DAYS ({settings.OUTPUT_RETENTION_DAYS}) days",
        ),
        ("model_id", data.get("model_id") not in (None, model), f"{library}; the default model was used"),
        ("lora_model", data.get("lora_model"), f"{library}; no LoRA was applied"),
        ("lora_strength", data.get("lora_strength") is not None, f"{library}; no LoRA was applied"),
        ("embeddings_model", data.get("embeddings_model"), f"{library}; no embedding was loaded"),
        ("vae", data.get("vae") not in (None, vae), f"{library}; the model's own VAE was used"),
        ("ip_adapter_id", data.get("ip_adapter_id"), f"{library}; no IP-Adapter was used"),
        ("ip_adapter_scale", data.get("ip_adapter_scale") is not None, f"{library}; no IP-Adapter was used"),
        ("ip_adapter_image", data.get("ip_adapter_image"), f"{library}; no IP-Adapter was used"),
    ]
    return [
        reason(field, why) for field, given, why in checks if given and not (model_library and field in MODEL_FIELDS)
    ]


def size_field(default=512, **kwargs):
    """A width or height: up to MAX_REQUESTED_SIDE is taken, then the size is fitted in the kind's largest
    side keeping its shape (GenerationSerializer.validate)."""
    return LenientNumberField(
        minimum=64, maximum=MAX_REQUESTED_SIDE, integer=True, multiple_of=8, default=default, **kwargs
    )


def scheduler_options(data: dict) -> dict:
    """The scheduler option fields a request set (option name -> value)."""
    names = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "timestep_spacing", "solver_order")
    options = {name: data[name] for name in (*names, "solver_type", "timesteps_preset")}
    options["algorithm_type"] = schedulers.ALGORITHM_TYPES.get((data["algorithm_type"] or "").strip().lower())
    return {name: value for name, value in options.items() if value is not None}


class GenerationSerializer(JobSerializer):
    """Fields shared by text2img, img2img and inpaint."""

    params_class = None  # the kind's parameters
    max_side = MAX_SIDE  # a larger size asked for is scaled down to fit, keeping its shape

    prompt = LenientTextField(max_length=20000, help_text="What to draw.")
    negative_prompt = LenientTextField(
        max_length=20000, required=False, default="", help_text="What to keep out of the image."
    )
    samples = LenientNumberField(
        minimum=1, maximum=4, integer=True, default=1, help_text="Images to make, 1-4 (image i uses seed + i)."
    )
    num_inference_steps = LenientNumberField(
        minimum=1,
        maximum=50,
        integer=True,
        default=None,
        help_text="Denoising steps, 1-50 (default 30, or the model's own: a few-step model's 1-8).",
    )
    guidance_scale = LenientNumberField(
        minimum=0,
        maximum=20,
        default=None,
        help_text="How closely to follow the prompt, 0-20 (default 7.5, or the model's own); at most 1 runs "
        "no negative-prompt pass.",
    )
    seed = LenientNumberField(
        minimum=-1,
        maximum=MAX_SEED,
        integer=True,
        default=None,
        help_text="Empty or negative: random; meta.seeds gives each image's seed.",
    )
    scheduler = LenientTextField(
        max_length=100,
        required=False,
        default=None,
        help_text='A diffusers scheduler class name or an A1111 label such as "DPM++ 2M Karras" (default '
        f"{schedulers.DEFAULT_SCHEDULER}, or the model's own).",
    )
    eta = LenientNumberField(
        minimum=0,
        maximum=1,
        default=None,
        help_text="TCD's gamma or DDIM's eta, 0-1 (beyond v3; default the model's own).",
    )
    quality = LenientChoiceField(
        choices=tuple(settings.OPENAI_QUALITY_STEPS),
        help_text="OpenAI's quality as steps (beyond v3): OPENAI_QUALITY_STEPS, scaled to a few-step model's own.",
    )
    use_karras_sigmas = LenientBooleanField(default=None, help_text="Karras noise schedule for the scheduler.")
    algorithm_type = LenientTextField(
        max_length=50,
        required=False,
        default=None,
        help_text='The DPM-Solver variant, e.g. "dpmsolver++" or "sde-dpmsolver++".',
    )
    # beyond v3: the rest of diffusers' scheduler options, named as its scheduler configs name them
    use_exponential_sigmas = LenientBooleanField(default=None, help_text="Exponential noise schedule.")
    use_beta_sigmas = LenientBooleanField(default=None, help_text="Beta noise schedule.")
    timestep_spacing = LenientChoiceField(
        choices=schedulers.TIMESTEP_SPACINGS, help_text='"leading", "linspace" or "trailing" (SGM uniform).'
    )
    solver_order = LenientNumberField(
        minimum=1, maximum=3, integer=True, default=None, help_text="The DPM-Solver / UniPC / DEIS order, 1-3."
    )
    solver_type = LenientChoiceField(choices=schedulers.SOLVER_TYPES, help_text='"midpoint" or "heun" (DPM-Solver).')
    timesteps_preset = LenientChoiceField(
        choices=schedulers.TIMESTEP_PRESETS, help_text='"align_your_steps": SDXL\'s Align-Your-Steps timesteps.'
    )
    output_format = LenientTextField(
        max_length=10, required=False, default="png", help_text='"png" (default) or "jpg".'
    )
    base64 = LenientBooleanField(default=False, help_text='"yes": outputs as .base64 text files, plus output_base64.')
    safety_checker = LenientBooleanField(
        default=False, help_text='"yes": images the safety checker flags come back black (when one is configured).'
    )
    # the hosted service's later fields: applied, or named in meta.not_applied (see `not_applied`)
    steps = LenientNumberField(
        minimum=1, maximum=50, integer=True, default=None, help_text="An alias of num_inference_steps."
    )
    upscale = UpscaleField(help_text='"yes" (2x) or 2-4: the images are upscaled by Real-ESRGAN in the same job.')
    enhance_prompt = LenientBooleanField(
        default=False, help_text='"yes": adds PROMPT_ENHANCEMENT to the prompt (meta.prompt shows the prompt used).'
    )
    self_attention = LenientBooleanField(
        default=False, help_text='"yes": perturbed-attention guidance (slower, better structure).'
    )
    clip_skip = LenientNumberField(
        minimum=1, maximum=12, integer=True, default=None, help_text="Text-encoder layers to skip, 1-12."
    )
    tomesd = LenientBooleanField(default=False, help_text=NOT_APPLIED)
    panorama = LenientBooleanField(default=False, help_text=NOT_APPLIED)
    multi_lingual = LenientBooleanField(default=False, help_text=NOT_APPLIED)
    face_enhance = LenientBooleanField(default=False, help_text=NOT_APPLIED)
    temp = LenientBooleanField(default=False, help_text=NOT_APPLIED)
    model_id = LenientTextField(
        max_length=200,
        required=False,
        default=None,
        help_text="A checkpoint of the model library (v4/v6/v7/v1 paths; v3 uses the default model).",
    )
    lora_model = LenientTextField(
        max_length=2000, required=False, default=None, help_text="Comma-separated LoRA ids of the model library."
    )
    lora_strength = LenientTextField(
        max_length=2000,
        required=False,
        default=None,
        help_text="One strength for all LoRAs, or a comma-separated list matching lora_model.",
    )
    embeddings_model = LenientTextField(
        max_length=2000,
        required=False,
        default=None,
        help_text="Comma-separated textual-inversion embedding ids; each id is also the token prompts use.",
    )
    vae = LenientTextField(
        max_length=200,
        required=False,
        default=None,
        help_text="A VAE of the model library instead of the checkpoint's own.",
    )
    ip_adapter_id = LenientTextField(
        max_length=200,
        required=False,
        default=None,
        help_text="An IP-Adapter of the model library: ip_adapter_image prompts with a picture.",
    )
    ip_adapter_scale = LenientNumberField(
        minimum=0, maximum=1, default=None, help_text="How strongly the image prompt steers, 0-1 (default 0.6)."
    )
    ip_adapter_image = InputImageField(
        required=False, default=None, help_text="The image prompt of ip_adapter_id: a URL, base64 or a data URL."
    )

    def validate(self, data):
        chosen = schedulers.resolve(data["scheduler"] or schedulers.DEFAULT_SCHEDULER, scheduler_options(data))
        if chosen is None:
            raise serializers.ValidationError({"scheduler": ["The selected scheduler is invalid."]})
        model_library = self.context.get("model_library", False)
        width, height = fit_within(data["width"], data["height"], self.max_side)
        try:
            renamed = library_fields(data, model_library)
            params = self.params_class(
                prompt=f"{data['prompt']}, {settings.PROMPT_ENHANCEMENT}" if data["enhance_prompt"] else data["prompt"],
                negative_prompt=data["negative_prompt"],
                width=width,
                height=height,
                samples=data["samples"],
                guidance_scale=float(DEFAULT_GUIDANCE if data["guidance_scale"] is None else data["guidance_scale"]),
                seed=random_seed(data["seed"]),
                scheduler=chosen.scheduler,
                scheduler_options=chosen.options,
                eta=data["eta"],
                quality=data["quality"] or "",
                asked=sampling_asked(data),
                realtime=self.context.get("realtime", False),
                output_format=OUTPUT_FORMATS.get(data["output_format"].strip().lower(), "png"),
                base64=data["base64"],
                safety_checker=data["safety_checker"],
                clip_skip=data["clip_skip"],
                self_attention=data["self_attention"],
                upscale=data["upscale"],
                not_applied=not_applied(data, model_library) + chosen.not_applied,
                **renamed,
            )
            inputs = {**self.kind_fields(data, params), **self.image_prompt(data, params, model_library)}
        except InvalidInput as exc:
            raise serializers.ValidationError({exc.field_name: [exc.message]}) from exc
        return self.submission(data, params, inputs)

    def kind_fields(self, data, params) -> dict:
        """The kind's own request fields, written into `params`; returns its input images (parameter field
        -> ImageSource). InvalidInput names a field that cannot be used."""
        return {}

    def image_prompt(self, data, params, model_library: bool) -> dict:
        """The IP-Adapter's image, on the paths that choose models (v3 names the fields in not_applied)."""
        if not model_library or not (data["ip_adapter_id"] or data["ip_adapter_image"]):
            return {}
        if data["ip_adapter_image"] is None:
            raise InvalidInput("ip_adapter_image", "The ip adapter image field is required with an ip adapter id.")
        if not params.ip_adapter_id:
            raise InvalidInput("ip_adapter_id", "The ip adapter id field is required with an ip adapter image.")
        params.ip_adapter_image_url = data["ip_adapter_image"].url
        return {"ip_adapter_image": data["ip_adapter_image"]}


class FromImageSerializer(GenerationSerializer):
    """The kinds that start from an init image: width/height default to its size (fit in 1024,
    multiples of 8)."""

    init_image = InputImageField(
        help_text="The input image: a URL (an output URL of this server is read from storage), base64 or a data URL."
    )
    width = size_field(default=None, help_text="64-1024, a multiple of 8.")
    height = size_field(default=None, help_text="64-1024, a multiple of 8.")
    strength = LenientNumberField(
        minimum=0, maximum=1, default=None, help_text="How much of the init image to repaint, 0-1 (default 0.7)."
    )
    prompt_strength = LenientNumberField(minimum=0, maximum=1, default=None, help_text="An alias of strength.")

    def kind_fields(self, data, params):
        strength = data["strength"] if data["strength"] is not None else data["prompt_strength"]
        params.strength = 0.7 if strength is None else float(strength)
        params.init_image_url = data["init_image"].url
        return {"init_image": data["init_image"]}
