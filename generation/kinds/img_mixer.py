"""img_mixer (image editing): up to four images mixed through a library IP-Adapter (their image tokens
side by side), steered by the prompt: text2img with several image prompts."""

from dataclasses import dataclass, field
from typing import ClassVar

from generation.kinds.base import IMAGE_EDITING, DiffusionParams, Kind, ModelType, Operation, OperationModel
from generation.kinds.fields import InputImageListField
from generation.kinds.requests import GenerationSerializer, reason, size_field

MIX_IMAGES = ("ip_adapter_image", "mix_image_2", "mix_image_3", "mix_image_4")  # its images, in order
MIXING_ADAPTER = OperationModel(
    model_type=ModelType.IP_ADAPTER,
    setting="IMG_MIXER_IP_ADAPTER",
    parameter="ip_adapter_id",
    field="init_image",
    missing="img_mixer needs an IP-Adapter in the model library, and this deployment has none: an admin adds one "
    "with manage.py addmodel FOLDER --id ID --kind ip_adapter.",
)


@dataclass(kw_only=True)
class ImgMixerParams(DiffusionParams):
    kind: ClassVar[str] = "img_mixer"
    inputs: ClassVar[tuple[str, ...]] = MIX_IMAGES
    operation_model: ClassVar[OperationModel] = MIXING_ADAPTER  # its IP-Adapter, when the request names none

    ip_adapter_scale: float = 0.7
    mix_image_2: str = ""
    mix_image_3: str = ""
    mix_image_4: str = ""
    init_image_urls: list = field(default_factory=list)  # the URLs the client sent (None: sent inline)

    @property
    def mix_images(self) -> list[str]:
        return [getattr(self, name) for name in MIX_IMAGES if getattr(self, name)]

    def request_fields(self) -> dict:
        urls = self.init_image_urls
        return {
            **super().request_fields(),
            "init_image": urls if urls and None not in urls else None,
            "ip_adapter_image": None,  # the mixed images are its image prompts
        }

    def meta_inputs(self, input_url, hint_urls):
        mixed = [input_url(url, name) for url, name in zip(self.init_image_urls, self.mix_images)]
        return {**super().meta_inputs(input_url, hint_urls), "init_image": mixed}

    def image_prompt(self, images):
        """Several images for the one adapter: their tokens side by side."""
        return {"ip_adapter_image": [[images[name] for name in MIX_IMAGES if name in images]]}


class ImgMixerSerializer(GenerationSerializer):
    """text2img with up to four image prompts through a library IP-Adapter (`ip_adapter_id`, else
    IMG_MIXER_IP_ADAPTER, else the first one the plan may use)."""

    params_class = ImgMixerParams
    init_image = InputImageListField(max_items=len(MIX_IMAGES), help_text="The images to mix: a list of 1-4.")
    width = size_field(help_text="64-1024, a multiple of 8.")
    height = size_field(help_text="64-1024, a multiple of 8.")

    def kind_fields(self, data, params):
        params.init_image_urls = [source.url for source in data["init_image"]]
        return dict(zip(MIX_IMAGES, data["init_image"]))

    def image_prompt(self, data, params, model_library):
        """The mixed images are the image prompts: a separate one is named, not silently dropped."""
        if data["ip_adapter_image"] is not None:
            params.not_applied.append(
                reason("ip_adapter_image", "img_mixer's image prompts are the init_image list; this one was not used")
            )
        return {}


MIX = Operation(
    name=ImgMixerParams.kind,
    serializer=ImgMixerSerializer,
    summary="Mix up to four images through an IP-Adapter",
    routes=dict.fromkeys(IMAGE_EDITING, "img_mixer"),
)
KIND = Kind(params=ImgMixerParams, cost_setting="CREDITS_PER_IMAGE", predictor="sdxl", operations=(MIX,))
