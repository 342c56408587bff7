"""Model files made in the tests (nothing downloaded): a second tiny checkpoint, LoRAs made with peft on
the demo UNet and saved with diffusers' LoRA saver, an embedding of random vectors, a VAE, ControlNets
made from the demo UNet."""

from pathlib import Path

import torch
from diffusers import AutoencoderKL, StableDiffusionXLPipeline
from django.conf import settings
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from generation.runtime.demo_model import build_demo_controlnet, build_demo_model


def demo_model() -> Path:
    path = Path(settings.SDXL_MODEL)
    if not (path / "model_index.json").exists():
        build_demo_model(path)
    return path


def second_checkpoint(folder: Path) -> Path:
    return build_demo_model(folder, seed=1)


def lora(folder: Path, seed: int) -> Path:
    """A LoRA on the demo UNet's attention projections with non-zero weights (so it changes images)."""
    pipe = StableDiffusionXLPipeline.from_pretrained(demo_model(), add_watermarker=False, use_safetensors=True)
    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=4, init_lora_weights=False, target_modules=["to_k", "to_q", "to_v", "to_out.0"])
    pipe.unet.add_adapter(config)
    StableDiffusionXLPipeline.save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(pipe.unet))
    return folder / "pytorch_lora_weights.safetensors"


def embedding(path: Path, seed: int, vectors: int = 2) -> Path:
    """A textual-inversion embedding for both demo text encoders (clip_l, clip_g)."""
    pipe = StableDiffusionXLPipeline.from_pretrained(demo_model(), add_watermarker=False, use_safetensors=True)
    torch.manual_seed(seed)
    widths = (pipe.text_encoder.config.hidden_size, pipe.text_encoder_2.config.hidden_size)
    save_file({"clip_l": torch.randn(vectors, widths[0]) * 3, "clip_g": torch.randn(vectors, widths[1]) * 3}, path)
    return path


def broken_embedding(path: Path) -> Path:
    """An embedding of huge alternating values (a broken file that passes the library's checks): the
    text encoders overflow on its token, so a prompt that uses it gets NaN images; other prompts don't."""
    pipe = StableDiffusionXLPipeline.from_pretrained(demo_model(), add_watermarker=False, use_safetensors=True)
    vectors = {}
    for key, encoder in (("clip_l", pipe.text_encoder), ("clip_g", pipe.text_encoder_2)):
        values = torch.full((1, encoder.config.hidden_size), 1e30)
        values[:, ::2] *= -1
        vectors[key] = values
    save_file(vectors, path)
    return path


def vae(folder: Path, seed: int) -> Path:
    """A VAE of the demo model's architecture with other weights."""
    torch.manual_seed(seed)
    config = AutoencoderKL.load_config(demo_model() / "vae")
    AutoencoderKL.from_config(config).save_pretrained(folder, safe_serialization=True)
    return folder


def pickle_checkpoint(path: Path) -> Path:
    torch.save({"state_dict": {}}, path)
    return path


def controlnet(folder: Path, seed: int) -> Path:
    """A ControlNet of the demo UNet, as `make run` builds its demo one (random weights that steer)."""
    return build_demo_controlnet(demo_model(), folder, seed=seed)


def ip_adapter(folder: Path, seed: int) -> Path:
    """An IP-Adapter of the SDXL layout for the demo UNet, random weights: an image encoder (a tiny CLIP
    vision model) in `image_encoder/` and `ip-adapter.safetensors` with the image projection and, for each
    cross-attention layer in the UNet's order, its key and value projections of image tokens."""
    pipe = StableDiffusionXLPipeline.from_pretrained(demo_model(), add_watermarker=False, use_safetensors=True)
    torch.manual_seed(seed)
    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
        projection_dim=32,
    )
    CLIPVisionModelWithProjection(config).save_pretrained(folder / "image_encoder", safe_serialization=True)
    width, tokens = pipe.unet.config.cross_attention_dim, 4
    tensors = {
        "image_proj.proj.weight": torch.randn(tokens * width, config.projection_dim) * 0.5,
        "image_proj.proj.bias": torch.zeros(tokens * width),
        "image_proj.norm.weight": torch.ones(width),
        "image_proj.norm.bias": torch.zeros(width),
    }
    layers = [name for name in pipe.unet.attn_processors if name.endswith("attn2.processor")]
    modules = dict(pipe.unet.named_modules())
    for index, name in enumerate(layers):
        attention = modules[name.removesuffix(".processor")]
        for projection in ("to_k", "to_v"):
            out_features = getattr(attention, projection).out_features
            tensors[f"ip_adapter.{2 * index + 1}.{projection}_ip.weight"] = torch.randn(out_features, width) * 0.3
    save_file(tensors, folder / "ip-adapter.safetensors")
    return folder


class _Brightness(torch.nn.Module):
    """A stand-in saliency model: bright pixels are the subject."""

    def __init__(self):
        super().__init__()
        self.score = torch.nn.Conv2d(3, 1, 1)
        with torch.no_grad():
            self.score.weight.fill_(4.0 / 3)
            self.score.bias.fill_(0.0)

    def forward(self, pixels):
        return torch.sigmoid(self.score(pixels))


def segmenter(path: Path, side: int = 64) -> Path:
    """An ONNX segmentation model with U2-Net's interface (1x3xHxW in, 1x1xHxW saliency out): bright
    pixels are the subject."""
    torch.onnx.export(
        _Brightness().eval(),
        (torch.zeros(1, 3, side, side),),
        str(path),
        input_names=["input.1"],
        output_names=["saliency"],
        dynamo=False,
    )
    return path
