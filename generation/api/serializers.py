"""Request serializers: lenient input in, typed job parameters out (generation/params.py).

Validation does no I/O: an image given by URL is only checked here and fetched once the request is
admitted (services.request_generation); an inline (base64) image is decoded. `validated_data` is
{"params": JobParams, "inputs": {parameter field: images.ImageSource}, "instant": bool,
"idempotency_key": str}.
"""

import secrets

from django.conf import settings
from rest_framework import serializers

from generation import request_fields, safe_http, schedulers, services
from generation.api.fields import (
    InputImageField,
    InputImageListField,
    LenientBooleanField,
    LenientChoiceField,
    LenientNumberField,
    LenientTextField,
    ScalarField,
    UpscaleField,
)
from generation.params import (
    ANNOTATED_TYPES,
    CONTROL_IMAGES,
    DEFAULT_HIRES_UPSCALER,
    IMAGE_RESIZERS,
    LATENT_UPSCALE_MODES,
    MAX_CONTROLNETS,
    MAX_SIDE,
    MIX_IMAGES,
    UPSCALE_MODELS,
    UPSCALER_ALIASES,
    ControlNetParams,
    Img2ImgParams,
    ImgMixerParams,
    InpaintParams,
    InvalidInput,
    OutpaintParams,
    RemoveBgParams,
    SuperResolutionParams,
    Text2ImgParams,
    deployment_model,
    deployment_vae,
    fit_size,
    fit_within,
)

MAX_SEED = 2**32 - 1
MAX_REQUESTED_SIDE = 16384  # a side asked for beyond this is clamped before the size is fitted


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


def _reason(field: str, reason: str) -> dict:
    return {"field": field, "reason": reason}


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
        _reason(field, reason)
        for field, given, reason in checks
        if given and not (model_library and field in MODEL_FIELDS)
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

    params_class = Text2ImgParams
    max_side = MAX_SIDE  # a larger size asked for is scaled down to fit, keeping its shape

    prompt = LenientTextField(max_length=20000, help_text="What to draw.")
    negative_prompt = LenientTextField(
        max_length=20000, required=False, default="", help_text="What to keep out of the image."
    )
    samples = LenientNumberField(
        minimum=1, maximum=4, integer=True, default=1, help_text="Images to make, 1-4 (image i uses seed + i)."
    )
    num_inference_steps = LenientNumberField(
        minimum=1, maximum=50, integer=True, default=30, help_text="Denoising steps, 1-50."
    )
    guidance_scale = LenientNumberField(
        minimum=1, maximum=20, default=7.5, help_text="How closely to follow the prompt, 1-20."
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
        default=schedulers.DEFAULT_SCHEDULER,
        help_text='A diffusers scheduler class name or an A1111 label such as "DPM++ 2M Karras".',
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
        sampling = schedulers.resolve(data["scheduler"], scheduler_options(data))
        if sampling is None:
            raise serializers.ValidationError({"scheduler": ["The selected scheduler is invalid."]})
        seed = data["seed"]
        model_library = self.context.get("model_library", False)
        width, height = fit_within(data["width"], data["height"], self.max_side)
        try:
            renamed = request_fields.to_parameters(data, model_library)
            params = self.params_class(
                prompt=f"{data['prompt']}, {settings.PROMPT_ENHANCEMENT}" if data["enhance_prompt"] else data["prompt"],
                negative_prompt=data["negative_prompt"],
                width=width,
                height=height,
                samples=data["samples"],
                guidance_scale=float(data["guidance_scale"]),
                seed=seed if seed is not None and seed >= 0 else secrets.randbelow(MAX_SEED + 1),
                scheduler=sampling.scheduler,
                scheduler_options=sampling.options,
                output_format=OUTPUT_FORMATS.get(data["output_format"].strip().lower(), "png"),
                base64=data["base64"],
                safety_checker=data["safety_checker"],
                clip_skip=data["clip_skip"],
                self_attention=data["self_attention"],
                upscale=data["upscale"],
                not_applied=not_applied(data, model_library) + sampling.not_applied,
                **renamed,
            )
            inputs = {**self.image_inputs(data, params), **self.image_prompt(data, params, model_library)}
        except InvalidInput as exc:
            raise serializers.ValidationError({exc.field_name: [exc.message]}) from exc
        return self.submission(data, params, inputs)

    def image_inputs(self, data, params) -> dict:
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


class Text2ImgSerializer(GenerationSerializer):
    """With `enable_hr`, A1111's hires fix (beyond v3): made at width x height, upscaled `hr_scale` times
    (or to `hr_resize_x` x `hr_resize_y`) by `hr_upscaler`, then repainted at `denoising_strength`."""

    width = size_field(help_text="64-1024, a multiple of 8.")
    height = size_field(help_text="64-1024, a multiple of 8.")
    enable_hr = LenientBooleanField(default=False, help_text='"yes": the hires fix (a second, img2img pass).')
    hr_scale = LenientNumberField(minimum=1, maximum=4, default=2.0, help_text="Hires upscale factor, 1-4.")
    hr_resize_x = LenientNumberField(
        minimum=0, maximum=MAX_REQUESTED_SIDE, integer=True, default=0, help_text="Hires width (0: by hr_scale)."
    )
    hr_resize_y = LenientNumberField(
        minimum=0, maximum=MAX_REQUESTED_SIDE, integer=True, default=0, help_text="Hires height (0: by hr_scale)."
    )
    hr_upscaler = LenientTextField(
        max_length=100,
        required=False,
        default=None,
        help_text='"Latent" (default) and its variants, "None", "Lanczos", "Nearest" or a library upscaler.',
    )
    hr_second_pass_steps = LenientNumberField(
        minimum=0, maximum=50, integer=True, default=0, help_text="Hires steps (0: as the first pass)."
    )
    denoising_strength = LenientNumberField(
        minimum=0, maximum=1, default=0.7, help_text="How much of the upscaled image the hires pass repaints."
    )

    def image_inputs(self, data, params):
        if data["enable_hr"]:
            params.hires = hires_fix(data, params)
        return {}


def hires_fix(data: dict, params) -> dict:
    """The hires fix's parameters: its size (`hr_resize_x`/`_y`, else the size times `hr_scale`; one of
    the two alone keeps the first pass's shape), fitted in MAX_SIDE, and its upscaler (an unknown one is
    named in not_applied and "Latent" used)."""
    width, height = params.width, params.height
    resize_x, resize_y = data["hr_resize_x"], data["hr_resize_y"]
    if resize_x or resize_y:
        target = (resize_x or round(resize_y * width / height), resize_y or round(resize_x * height / width))
    else:
        target = (round(width * data["hr_scale"]), round(height * data["hr_scale"]))
    target = fit_size(*target)
    asked = (data["hr_upscaler"] or DEFAULT_HIRES_UPSCALER).strip()
    upscaler = UPSCALER_ALIASES.get(asked, asked)
    if upscaler not in (*LATENT_UPSCALE_MODES, *IMAGE_RESIZERS, *UPSCALE_MODELS):
        params.not_applied.append(
            _reason("hr_upscaler", f"no upscaler named {asked!r} is installed; {DEFAULT_HIRES_UPSCALER} was used")
        )
        upscaler = DEFAULT_HIRES_UPSCALER
    return {
        "upscaler": upscaler,
        "width": target[0],
        "height": target[1],
        "steps": data["hr_second_pass_steps"],
        "strength": float(data["denoising_strength"]),
    }


class Img2ImgSerializer(GenerationSerializer):
    """Width/height default to the init image's size (fit in 1024, multiples of 8)."""

    params_class = Img2ImgParams
    init_image = InputImageField(
        help_text="The input image: a URL (an output URL of this server is read from storage), base64 or a data URL."
    )
    width = size_field(default=None, help_text="64-1024, a multiple of 8.")
    height = size_field(default=None, help_text="64-1024, a multiple of 8.")
    strength = LenientNumberField(
        minimum=0, maximum=1, default=None, help_text="How much of the init image to repaint, 0-1 (default 0.7)."
    )
    prompt_strength = LenientNumberField(minimum=0, maximum=1, default=None, help_text="An alias of strength.")

    def image_inputs(self, data, params):
        strength = data["strength"] if data["strength"] is not None else data["prompt_strength"]
        params.strength = 0.7 if strength is None else float(strength)
        params.init_image_url = data["init_image"].url
        return {"init_image": data["init_image"]}


class InpaintSerializer(Img2ImgSerializer):
    """White in the mask is repainted, black is kept; a mask of another size is resized to the image."""

    params_class = InpaintParams
    mask_image = InputImageField(help_text="White is repainted, black is kept; resized to the image when it differs.")

    def image_inputs(self, data, params):
        params.mask_image_url = data["mask_image"].url
        return {**super().image_inputs(data, params), "mask_image": data["mask_image"]}


class EditingInpaintSerializer(InpaintSerializer):
    """image_editing/inpaint: the platform's inpaint with the hosted image-editing API's guidance range."""

    guidance_scale = LenientNumberField(minimum=1, maximum=5, default=5, help_text="1-5 (default 5).")


class ObjectRemovalSerializer(JobSerializer):
    """SDXL inpainting of the mask with OBJECT_REMOVAL_PROMPT and OBJECT_REMOVAL_NEGATIVE_PROMPT (words
    that fill with background and discourage new objects) at OBJECT_REMOVAL_STRENGTH: an inpaint job that
    remembers it was an object removal (shown and run again as one)."""

    operation = "object_removal"
    preset_fields = ("prompt", "negative_prompt", "strength", "steps")  # the preset's own, not the client's

    init_image = InputImageField(help_text="The image: a URL, base64 or a data URL.")
    mask_image = InputImageField(help_text="White: the object to remove; black is kept.")
    seed = LenientNumberField(minimum=-1, maximum=MAX_SEED, integer=True, default=None, help_text="Empty: random.")
    base64 = LenientBooleanField(default=False, help_text='"yes": outputs as .base64 text files.')
    temp = LenientBooleanField(default=False, help_text=NOT_APPLIED)

    def validate(self, data):
        seed = data["seed"]
        params = InpaintParams(
            prompt=settings.OBJECT_REMOVAL_PROMPT,
            negative_prompt=settings.OBJECT_REMOVAL_NEGATIVE_PROMPT,
            strength=settings.OBJECT_REMOVAL_STRENGTH,
            steps=settings.OBJECT_REMOVAL_STEPS,
            seed=seed if seed is not None and seed >= 0 else secrets.randbelow(MAX_SEED + 1),
            base64=data["base64"],
            init_image_url=data["init_image"].url,
            mask_image_url=data["mask_image"].url,
            not_applied=not_applied({"temp": data["temp"]}),
            operation=self.operation,
        )
        return self.submission(data, params, {"init_image": data["init_image"], "mask_image": data["mask_image"]})


def outpaint_size(default: int):
    return size_field(default=default, help_text="64-1440, a multiple of 8.")


OUTPAINT_MAX_SIDE = 1440


class OutpaintSerializer(GenerationSerializer):
    """The image centred on a canvas of `width` x `height`; the new area and `overlap_width` pixels into
    the image are painted."""

    params_class = OutpaintParams
    max_side = OUTPAINT_MAX_SIDE
    image = InputImageField(help_text="The image to extend: a URL, base64 or a data URL.")
    width = outpaint_size(1280)
    height = outpaint_size(720)
    overlap_width = LenientNumberField(
        minimum=0, maximum=42, integer=True, default=32, help_text="Pixels of the image repainted at each seam, 0-42."
    )
    num_inference_steps = LenientNumberField(minimum=1, maximum=30, integer=True, default=30, help_text="1-30.")
    guidance_scale = LenientNumberField(minimum=1, maximum=20, default=8, help_text="1-20 (default 8).")

    def image_inputs(self, data, params):
        params.steps = min(params.steps, 30)
        params.overlap_width = data["overlap_width"]
        params.image_url = data["image"].url
        return {"image": data["image"]}


class ImgMixerSerializer(GenerationSerializer):
    """text2img with up to four image prompts through a library IP-Adapter (`ip_adapter_id`, else
    IMG_MIXER_IP_ADAPTER, else the first one the plan may use)."""

    params_class = ImgMixerParams
    init_image = InputImageListField(max_items=len(MIX_IMAGES), help_text="The images to mix: a list of 1-4.")
    width = size_field(help_text="64-1024, a multiple of 8.")
    height = size_field(help_text="64-1024, a multiple of 8.")

    def image_inputs(self, data, params):
        params.init_image_urls = [source.url for source in data["init_image"]]
        return dict(zip(MIX_IMAGES, data["init_image"]))

    def image_prompt(self, data, params, model_library):
        """The mixed images are the image prompts: a separate one is named, not silently dropped."""
        if data["ip_adapter_image"] is not None:
            params.not_applied.append(
                _reason("ip_adapter_image", "img_mixer's image prompts are the init_image list; this one was not used")
            )
        return {}


class RemoveBgSerializer(JobSerializer):
    """Background removal by the library's segmentation model: a PNG with the background transparent, or
    the mask. Alpha matting refines the edges with pymatting, which is not installed: its fields are
    named in meta.not_applied."""

    image = InputImageField(help_text="The image: a URL, base64 or a data URL.")
    only_mask = LenientBooleanField(default=False, help_text='"yes": the mask itself (white = the subject).')
    inverse_mask = LenientBooleanField(default=False, help_text='"yes": the mask inverted (the background kept).')
    post_process_mask = LenientBooleanField(default=False, help_text='"yes": specks removed, edges made hard.')
    alpha_matting = LenientBooleanField(default=False, help_text=NOT_APPLIED)
    alpha_matting_foreground_threshold = LenientNumberField(
        minimum=0, maximum=255, integer=True, default=240, help_text=NOT_APPLIED
    )
    alpha_matting_background_threshold = LenientNumberField(
        minimum=0, maximum=255, integer=True, default=20, help_text=NOT_APPLIED
    )
    alpha_matting_erode_size = LenientNumberField(
        minimum=0, maximum=100, integer=True, default=5, help_text=NOT_APPLIED
    )
    seed = LenientNumberField(
        minimum=-1, maximum=MAX_SEED, integer=True, default=None, help_text="Echoed; the model is deterministic."
    )
    base64 = LenientBooleanField(default=False, help_text='"yes": outputs as .base64 text files.')
    temp = LenientBooleanField(default=False, help_text=NOT_APPLIED)

    def validate(self, data):
        seed = data["seed"]
        skipped = not_applied({"temp": data["temp"]})
        if data["alpha_matting"]:
            skipped.append(
                _reason(
                    "alpha_matting", "alpha matting (pymatting) is not installed; the edges are the model's own mask"
                )
            )
        params = RemoveBgParams(
            image_url=data["image"].url,
            only_mask=data["only_mask"],
            inverse_mask=data["inverse_mask"],
            post_process_mask=data["post_process_mask"],
            seed=seed if seed is not None and seed >= 0 else secrets.randbelow(MAX_SEED + 1),
            base64=data["base64"],
            not_applied=skipped,
        )
        return self.submission(data, params, {"image": data["image"]})


class Base64ToUrlSerializer(serializers.Serializer):
    init_image = InputImageField(help_text="The image as base64 (or a data URL).")

    def validate_init_image(self, source):
        if source.url:
            raise serializers.ValidationError("The init image must be base64 (it is already a URL).")
        return source


class ControlNetSerializer(GenerationSerializer):
    """The control image is `control_image` (one, or one per ControlNet), else `init_image`; with both, the
    init image is the img2img start; with `mask_image`, ControlNet inpainting."""

    params_class = ControlNetParams
    controlnet_model = LenientTextField(
        max_length=2000, help_text=f"A ControlNet id of the model library, or up to {MAX_CONTROLNETS} comma-separated."
    )
    controlnet_type = LenientTextField(
        max_length=200,
        required=False,
        default=None,
        help_text="canny, depth, openpose, tile, ... (one, or one per model; default: the model id when it names a type).",
    )
    controlnet_conditioning_scale = LenientTextField(
        max_length=200,
        required=False,
        default=None,
        help_text="0.1-5 (default 1): one value, or comma-separated one per model.",
    )
    auto_hint = LenientBooleanField(
        default=True, help_text='"yes" (default): a canny model gets the control image\'s canny edges.'
    )
    guess_mode = LenientBooleanField(default=False, help_text='"yes": diffusers\' guess mode (no prompt needed).')
    init_image = InputImageField(
        required=False, default=None, help_text="The control image when none is given, else the img2img start."
    )
    control_image = InputImageListField(
        max_items=MAX_CONTROLNETS,
        required=False,
        default=None,
        help_text="The control image, or a list with one per ControlNet.",
    )
    mask_image = InputImageField(
        required=False, default=None, help_text="With init_image: ControlNet inpainting (white is repainted)."
    )
    width = size_field(default=None, help_text="64-1024, a multiple of 8 (default: the image's size).")
    height = size_field(default=None, help_text="64-1024, a multiple of 8 (default: the image's size).")
    strength = LenientNumberField(
        minimum=0, maximum=1, default=0.55, help_text="How much of the init image to repaint, 0-1 (default 0.55)."
    )

    def image_inputs(self, data, params):
        controls = data["control_image"] or []
        if not controls and data["init_image"] is None:
            raise InvalidInput("control_image", "The control image field is required (or an init image).")
        if data["mask_image"] is not None and data["init_image"] is None:
            raise InvalidInput("init_image", "The init image field is required with a mask image.")
        params.controlnets = request_fields.controlnets(data)
        if len(controls) not in (0, 1, len(params.controlnets)):
            raise InvalidInput("control_image", "Give one control image, or one per ControlNet.")
        params.auto_hint, params.guess_mode = data["auto_hint"], data["guess_mode"]
        params.strength = float(data["strength"])
        params.self_attention = False
        params.not_applied += _controlnet_not_applied(data, params)
        inputs = dict(zip(CONTROL_IMAGES, controls))
        params.control_image_urls = [source.url for source in controls]
        for name in ("init_image", "mask_image"):
            if data[name] is not None:
                inputs[name] = data[name]
                setattr(params, f"{name}_url", data[name].url)
        return inputs


def _controlnet_not_applied(data, params: ControlNetParams) -> list[dict]:
    skipped = []
    if data["self_attention"]:
        skipped.append(_reason("self_attention", "perturbed-attention guidance is not combined with ControlNet here"))
    annotated = sorted({model["type"] for model in params.controlnets if model["type"] in ANNOTATED_TYPES})
    if params.auto_hint and annotated:
        skipped.append(
            _reason(
                "auto_hint",
                f"no {', '.join(annotated)} annotator is installed on this deployment; the control image was used "
                "as given (send a ready-made hint)",
            )
        )
    return skipped


class SuperResolutionSerializer(JobSerializer):
    url = InputImageField(
        required=False,
        default=None,
        help_text="The image to upscale: a URL, base64 or a data URL (init_image is an alias).",
    )
    init_image = InputImageField(required=False, default=None, help_text="An alias of url.")
    scale = LenientNumberField(minimum=2, maximum=4, integer=True, default=4, help_text="2-4 (default 4).")
    model_id = LenientTextField(
        max_length=100,
        required=False,
        default=None,
        help_text="The upscaler: RealESRGAN_x4plus (default), RealESRNet_x4plus, RealESRGAN_x4plus_anime_6B, RealESRGAN_x2plus or realesr-general-x4v3.",
    )
    face_enhance = LenientBooleanField(default=False, help_text=NOT_APPLIED)

    def validate(self, data):
        given = data["url"] or data["init_image"]
        if given is None:
            raise serializers.ValidationError({"url": ["The url field is required."]})
        model_id = data["model_id"] if data["model_id"] in UPSCALE_MODELS else UPSCALE_MODELS[0]
        skipped = not_applied({"face_enhance": data["face_enhance"]})
        if data["model_id"] not in (None, model_id):
            skipped.append(
                _reason("model_id", f"no upscaler named {data['model_id']!r} is installed; {model_id} was used")
            )
        params = SuperResolutionParams(
            image_url=given.url,
            scale=data["scale"],
            upscaler=model_id,
            face_enhance=data["face_enhance"],
            not_applied=skipped,
        )
        return self.submission(data, params, {"image": given})


class FetchSerializer(serializers.Serializer):
    request_id = LenientNumberField(
        minimum=0,
        maximum=services.MAX_JOB_ID,
        integer=True,
        required=False,
        default=None,
        help_text="The job id (the path's id, for clients that send it in the body).",
    )


SERIALIZERS = {
    "text2img": Text2ImgSerializer,
    "img2img": Img2ImgSerializer,
    "inpaint": InpaintSerializer,
    "controlnet": ControlNetSerializer,
    "outpaint": OutpaintSerializer,
    "img_mixer": ImgMixerSerializer,
    "removebg_mask": RemoveBgSerializer,
    "object_removal": ObjectRemovalSerializer,  # an inpaint job with the fill words (the playground's form)
    "super_resolution": SuperResolutionSerializer,
}
