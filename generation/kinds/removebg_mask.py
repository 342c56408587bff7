"""removebg_mask (image editing): an image's background removed by a library segmentation model (an
ONNX U2-Net or IS-Net): the image with a transparent background (PNG), or the mask (`only_mask`; white =
the subject)."""

from dataclasses import dataclass
from typing import ClassVar

from generation.kinds.base import IMAGE_EDITING, JobParams, Kind, ModelType, Operation, OperationModel, flag
from generation.kinds.fields import InputImageField, LenientBooleanField, LenientNumberField
from generation.kinds.requests import MAX_SEED, NOT_APPLIED, JobSerializer, not_applied, random_seed, reason

SEGMENTER = OperationModel(
    model_type=ModelType.SEGMENTATION,
    setting="REMOVEBG_MODEL",
    parameter="segmenter",
    field="image",
    missing="removebg_mask needs a background-removal model in the model library, and this deployment has none: "
    "an admin adds an ONNX U2-Net or IS-Net (u2net.onnx or isnet-general-use.onnx, Apache-2.0, from the "
    "rembg project's releases) with manage.py addmodel FILE.onnx --id ID --kind segmentation.",
)


@dataclass(kw_only=True)
class RemoveBgParams(JobParams):
    kind: ClassVar[str] = "removebg_mask"
    inputs: ClassVar[tuple[str, ...]] = ("image",)
    operation_model: ClassVar[OperationModel] = SEGMENTER

    image: str = ""
    image_url: str | None = None
    width: int = 0  # the input's size
    height: int = 0
    segmenter: str = ""  # the library model, chosen when the job is admitted
    only_mask: bool = False
    inverse_mask: bool = False
    post_process_mask: bool = False

    def request_fields(self) -> dict:
        return {
            **super().request_fields(),
            "image": self.image_url,
            "only_mask": flag(self.only_mask),
            "inverse_mask": flag(self.inverse_mask),
            "post_process_mask": flag(self.post_process_mask),
        }

    def models_named(self):
        return {ModelType.SEGMENTATION: [self.segmenter] if self.segmenter else []}

    def complete(self, sizes):
        self.width, self.height = sizes["image"]

    def shape(self) -> str:
        return f"{self.kind}:{self.width}x{self.height}"


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
        skipped = not_applied({"temp": data["temp"]})
        if data["alpha_matting"]:
            skipped.append(
                reason(
                    "alpha_matting", "alpha matting (pymatting) is not installed; the edges are the model's own mask"
                )
            )
        params = RemoveBgParams(
            image_url=data["image"].url,
            only_mask=data["only_mask"],
            inverse_mask=data["inverse_mask"],
            post_process_mask=data["post_process_mask"],
            seed=random_seed(data["seed"]),
            base64=data["base64"],
            not_applied=skipped,
        )
        return self.submission(data, params, {"image": data["image"]})


REMOVE_BACKGROUND = Operation(
    name=RemoveBgParams.kind,
    serializer=RemoveBgSerializer,
    summary="Remove an image's background (or give its mask)",
    routes=dict.fromkeys(IMAGE_EDITING, "removebg_mask"),
)
KIND = Kind(
    params=RemoveBgParams, cost_setting="CREDITS_PER_IMAGE", predictor="background", operations=(REMOVE_BACKGROUND,)
)
