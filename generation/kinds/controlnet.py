"""controlnet: SDXL steered by one or more library ControlNets, each with its conditioning scale and
control type, from control images (canny edges made on the worker with `auto_hint`); an init image is
the control image, or with one the img2img start, or with a mask the image ControlNet inpaints."""

from dataclasses import dataclass, field
from typing import ClassVar

from PIL import Image

from generation.kinds.base import (
    ENTERPRISE,
    ENTERPRISE_IMAGES,
    ENTERPRISE_TXT2IMG,
    V5,
    V6_IMAGES,
    DiffusionParams,
    InvalidInput,
    Kind,
    Operation,
    fit_size,
    flag,
    start_inputs,
    strength_steps,
)
from generation.kinds.fields import (
    InputImageField,
    InputImageListField,
    LenientBooleanField,
    LenientNumberField,
    LenientTextField,
)
from generation.kinds.requests import GenerationSerializer, comma_list, number, per_model, reason, size_field

CONTROL_IMAGES = ("control_image", "control_image_2", "control_image_3")  # one per ControlNet at most
MAX_CONTROLNETS = len(CONTROL_IMAGES)
CANNY = "canny"  # the control type whose hint (auto_hint) this deployment makes itself
# types whose hint needs an annotator model (depth estimation, pose detection, ...) none of which is installed
ANNOTATED_TYPES = ("depth", "openpose", "lineart", "softedge", "mlsd", "normal", "scribble", "segmentation")
CONTROL_TYPES = (CANNY, *ANNOTATED_TYPES, "tile", "inpaint", "qrcode", "shuffle", "ip2p")  # the others: as given
CONDITIONING_SCALES = (0.1, 5.0)


@dataclass(kw_only=True)
class ControlNetParams(DiffusionParams):
    """The control image of ControlNet i is `control_image` (i = 0), `control_image_2`, ..., the first one
    for every model when only one was given, and `init_image` when none was. With both an init image and a
    control image the init image is also the img2img start (at `strength`); with a mask it is ControlNet
    inpainting. Width and height default to the init (else control) image's size."""

    kind: ClassVar[str] = "controlnet"
    inputs: ClassVar[tuple[str, ...]] = ("init_image", "mask_image", *CONTROL_IMAGES, "ip_adapter_image")

    width: int | None = None
    height: int | None = None
    controlnets: list = field(default_factory=list)  # [{"id": library id, "scale": float, "type": str}, ...]
    auto_hint: bool = True  # a canny-type model gets the control image's canny edges
    guess_mode: bool = False
    strength: float = 0.55  # of the init image, when it is an img2img start
    init_image: str = ""
    init_image_url: str | None = None
    mask_image: str = ""
    mask_image_url: str | None = None
    control_image: str = ""
    control_image_2: str = ""
    control_image_3: str = ""
    control_image_urls: list = field(default_factory=list)  # the URLs the client sent (None: sent inline)

    @property
    def control_images(self) -> list[str]:
        """The stored control images, in order (none: the init image is the control image)."""
        return [getattr(self, name) for name in CONTROL_IMAGES if getattr(self, name)]

    @property
    def starts_from_image(self) -> bool:
        """The init image is an img2img (or inpainting) start, not only the control image."""
        return bool(self.init_image and (self.control_image or self.mask_image))

    @property
    def pipeline(self) -> str:
        if self.mask_image:
            return "inpainting"
        return "image_to_image" if self.starts_from_image else "text_to_image"

    @property
    def effective_strength(self) -> float:
        return strength_steps(self.strength, self.steps)

    def request_fields(self) -> dict:
        urls = self.control_image_urls
        return {
            **super().request_fields(),
            "controlnet_model": ",".join(model["id"] for model in self.controlnets),
            "controlnet_type": ",".join(model["type"] for model in self.controlnets),
            "controlnet_conditioning_scale": ",".join(str(model["scale"]) for model in self.controlnets),
            "auto_hint": flag(self.auto_hint),
            "guess_mode": flag(self.guess_mode),
            "strength": self.strength,
            "init_image": self.init_image_url,
            "mask_image": self.mask_image_url,
            "control_image": (urls[0] if len(urls) == 1 else urls) if urls and None not in urls else None,
        }

    def meta_inputs(self, input_url, hint_urls):
        """Its input images (as sent, else where they are stored) and, once it succeeded, `control_hints`:
        the control images the models saw (after auto_hint)."""
        body = super().meta_inputs(input_url, hint_urls)
        for name in ("init_image", "mask_image"):
            if getattr(self, name):
                body[name] = input_url(getattr(self, f"{name}_url"), getattr(self, name))
        controls = [input_url(url, name) for url, name in zip(self.control_image_urls, self.control_images)]
        if controls:
            body["control_image"] = controls[0] if len(controls) == 1 else controls
        if hint_urls is not None:
            body["control_hints"] = hint_urls
        return body

    def complete(self, sizes):
        default_width, default_height = fit_size(*sizes.get("init_image") or sizes["control_image"])
        self.width = self.width or default_width
        self.height = self.height or default_height

    @property
    def controlnet_ids(self) -> list[str]:
        return [model["id"] for model in self.controlnets]

    def denoising_steps(self) -> int:
        return self.steps_at(self.effective_strength if self.starts_from_image else 1.0)

    def batch_key(self) -> tuple | None:
        """Single-ControlNet jobs from a control image alone batch like text2img (one control image per
        prompt); diffusers takes one batch of conditionings for several ControlNets, and an init image
        starts each job apart."""
        if len(self.controlnets) != 1 or self.starts_from_image or not self.batches():
            return None
        model = self.controlnets[0]
        return (*self.shared_call_fields(), model["id"], model["scale"], model["type"], self.auto_hint, self.guess_mode)

    def shape(self) -> str:
        return super().shape() + f":cn{len(self.controlnets)}" + (":img" if self.starts_from_image else "")

    def control_sources(self, images):
        """Each model's own control image (or the one shared, or the init image) at the output size, and
        canny for a canny model while auto_hint is on."""
        sources = [images[name] for name in CONTROL_IMAGES if name in images] or [images["init_image"]]
        sources *= len(self.controlnets) if len(sources) == 1 else 1
        return [
            (source.resize(self.size, Image.LANCZOS), CANNY if self.auto_hint and model["type"] == CANNY else "")
            for source, model in zip(sources, self.controlnets)
        ]

    def call_inputs(self, images, batch, hints):
        """The hints (one per model; in a batch, which has one model, one per image) with their scales, and
        the init image and mask of a job that starts from one."""
        scales = [model["scale"] for model in self.controlnets]
        if len(batch) > 1:
            control = [job_hints[0] for job, job_hints in zip(batch, hints) for _ in job.seeds]
        else:
            control = hints[0][0] if len(hints[0]) == 1 else hints[0]
        inputs = {
            "controlnet_conditioning_scale": scales[0] if len(scales) == 1 else scales,
            "guess_mode": self.guess_mode,
            "width": self.width,
            "height": self.height,
            **self.image_prompt(images),
        }
        if not self.starts_from_image:
            return {**inputs, "image": control}
        return {**inputs, **start_inputs(images, self.size, self.effective_strength), "control_image": control}


def controlnets(data: dict) -> list[dict]:
    """`controlnet_model` ids with their `controlnet_conditioning_scale` (one for all or one each, clamped
    to 0.1-5, default 1) and `controlnet_type` (one for all or one each; default: the model's id when that
    names a type, as the hosted service's ids do)."""
    ids = comma_list(data["controlnet_model"])
    if not ids:
        raise InvalidInput("controlnet_model", "The controlnet model field is required.")
    if len(ids) > MAX_CONTROLNETS:
        raise InvalidInput("controlnet_model", f"At most {MAX_CONTROLNETS} ControlNets can be combined.")
    scales = per_model(data["controlnet_conditioning_scale"], len(ids), "controlnet_conditioning_scale", 1.0, number)
    given_types = per_model(data["controlnet_type"], len(ids), "controlnet_type", "")
    types = [kind.lower() or (model if model in CONTROL_TYPES else "") for kind, model in zip(given_types, ids)]
    if unknown := [kind for kind in types if kind and kind not in CONTROL_TYPES]:
        raise InvalidInput(
            "controlnet_type", f"Unknown controlnet type {unknown[0]!r}; the types are {', '.join(CONTROL_TYPES)}."
        )
    low, high = CONDITIONING_SCALES
    return [
        {"id": model, "scale": min(high, max(low, scale)), "type": kind}
        for model, scale, kind in zip(ids, scales, types)
    ]


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

    def kind_fields(self, data, params):
        controls = data["control_image"] or []
        if not controls and data["init_image"] is None:
            raise InvalidInput("control_image", "The control image field is required (or an init image).")
        if data["mask_image"] is not None and data["init_image"] is None:
            raise InvalidInput("init_image", "The init image field is required with a mask image.")
        params.controlnets = controlnets(data)
        if len(controls) not in (0, 1, len(params.controlnets)):
            raise InvalidInput("control_image", "Give one control image, or one per ControlNet.")
        params.auto_hint, params.guess_mode = data["auto_hint"], data["guess_mode"]
        params.strength = float(data["strength"])
        params.self_attention = False
        params.not_applied += _not_applied(data, params)
        inputs = dict(zip(CONTROL_IMAGES, controls))
        params.control_image_urls = [source.url for source in controls]
        for name in ("init_image", "mask_image"):
            if data[name] is not None:
                inputs[name] = data[name]
                setattr(params, f"{name}_url", data[name].url)
        return inputs


def _not_applied(data, params: ControlNetParams) -> list[dict]:
    skipped = []
    if data["self_attention"]:
        skipped.append(reason("self_attention", "perturbed-attention guidance is not combined with ControlNet here"))
    annotated = sorted({model["type"] for model in params.controlnets if model["type"] in ANNOTATED_TYPES})
    if params.auto_hint and annotated:
        skipped.append(
            reason(
                "auto_hint",
                f"no {', '.join(annotated)} annotator is installed on this deployment; the control image was used "
                "as given (send a ready-made hint)",
            )
        )
    return skipped


STEER = Operation(
    name=ControlNetParams.kind,
    serializer=ControlNetSerializer,
    summary="Generate images steered by ControlNets",
    routes=dict.fromkeys((V5, V6_IMAGES, ENTERPRISE, ENTERPRISE_IMAGES, ENTERPRISE_TXT2IMG), "controlnet"),
    form=("prompt", "image", "mask", "control", "size", "seed", "strength", "sampling", "models"),
)
KIND = Kind(params=ControlNetParams, cost_setting="CREDITS_PER_CONTROLNET_IMAGE", predictor="sdxl", operations=(STEER,))
