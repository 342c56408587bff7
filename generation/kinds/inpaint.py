"""inpaint: the white part of a mask repainted, the rest of the init image kept; and object_removal, an
inpaint preset that fills the mask with background (an operation of this kind, remembered as such)."""

from dataclasses import dataclass
from typing import ClassVar

from django.conf import settings

from generation.kinds.base import (
    IMAGE_EDITING,
    IMAGES,
    V3,
    V4_DREAMBOOTH,
    V7_IMAGES,
    FromImageParams,
    Kind,
    Operation,
)
from generation.kinds.fields import InputImageField, LenientBooleanField, LenientNumberField
from generation.kinds.requests import (
    MAX_SEED,
    NOT_APPLIED,
    FromImageSerializer,
    JobSerializer,
    not_applied,
    random_seed,
)


@dataclass(kw_only=True)
class InpaintParams(FromImageParams):
    """White in the mask is repainted, black is kept; a mask of another size is resized to the image."""

    kind: ClassVar[str] = "inpaint"
    inputs: ClassVar[tuple[str, ...]] = ("init_image", "mask_image", "ip_adapter_image")
    pipeline: ClassVar[str] = "inpainting"

    mask_image: str = ""
    mask_image_url: str | None = None

    def request_fields(self) -> dict:
        return {**super().request_fields(), "mask_image": self.mask_image_url}

    def meta_inputs(self, input_url, hint_urls):
        return {
            **super().meta_inputs(input_url, hint_urls),
            "mask_image": input_url(self.mask_image_url, self.mask_image),
        }


class InpaintSerializer(FromImageSerializer):
    """White in the mask is repainted, black is kept; resized to the image when it differs."""

    params_class = InpaintParams
    mask_image = InputImageField(help_text="White is repainted, black is kept; resized to the image when it differs.")

    def kind_fields(self, data, params):
        params.mask_image_url = data["mask_image"].url
        return {**super().kind_fields(data, params), "mask_image": data["mask_image"]}


class EditingInpaintSerializer(InpaintSerializer):
    """image_editing/inpaint: the platform's inpaint with the hosted image-editing API's guidance range."""

    guidance_scale = LenientNumberField(minimum=1, maximum=5, default=5, help_text="1-5 (default 5).")


OBJECT_REMOVAL = "object_removal"


class ObjectRemovalSerializer(JobSerializer):
    """SDXL inpainting of the mask with OBJECT_REMOVAL_PROMPT and OBJECT_REMOVAL_NEGATIVE_PROMPT (words
    that fill with background and discourage new objects) at OBJECT_REMOVAL_STRENGTH: an inpaint job that
    remembers it was an object removal (shown and run again as one)."""

    init_image = InputImageField(help_text="The image: a URL, base64 or a data URL.")
    mask_image = InputImageField(help_text="White: the object to remove; black is kept.")
    seed = LenientNumberField(minimum=-1, maximum=MAX_SEED, integer=True, default=None, help_text="Empty: random.")
    base64 = LenientBooleanField(default=False, help_text='"yes": outputs as .base64 text files.')
    temp = LenientBooleanField(default=False, help_text=NOT_APPLIED)

    def validate(self, data):
        params = InpaintParams(
            prompt=settings.OBJECT_REMOVAL_PROMPT,
            negative_prompt=settings.OBJECT_REMOVAL_NEGATIVE_PROMPT,
            strength=settings.OBJECT_REMOVAL_STRENGTH,
            steps=settings.OBJECT_REMOVAL_STEPS,
            seed=random_seed(data["seed"]),
            base64=data["base64"],
            init_image_url=data["init_image"].url,
            mask_image_url=data["mask_image"].url,
            not_applied=not_applied({"temp": data["temp"]}),
            operation=OBJECT_REMOVAL,
        )
        return self.submission(data, params, {"init_image": data["init_image"], "mask_image": data["mask_image"]})


REPAINT = Operation(
    name=InpaintParams.kind,
    serializer=InpaintSerializer,
    summary="Repaint the white part of a mask",
    routes={
        V3: "inpaint",
        V4_DREAMBOOTH: "inpaint",
        **dict.fromkeys((*IMAGES, *IMAGE_EDITING), "inpaint"),
        V7_IMAGES: "inpaint",
    },
    form=("prompt", "image", "mask", "size", "seed", "strength", "sampling", "models"),
    family_serializers=dict.fromkeys(IMAGE_EDITING, EditingInpaintSerializer),
)
REMOVE_OBJECT = Operation(
    name=OBJECT_REMOVAL,
    serializer=ObjectRemovalSerializer,
    summary="Remove the masked object and fill in the background",
    routes=dict.fromkeys(IMAGE_EDITING, OBJECT_REMOVAL),
    form=("image", "mask", "seed"),
    preset=("prompt", "negative_prompt", "strength", "steps"),
)
KIND = Kind(
    params=InpaintParams, cost_setting="CREDITS_PER_IMAGE", predictor="sdxl", operations=(REPAINT, REMOVE_OBJECT)
)
