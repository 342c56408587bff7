"""A tiny random-weight SDXL, built locally with the real diffusers/transformers classes.

It has the structure of SDXL base (two CLIP text encoders, a text-time conditioned UNet, a VAE with a
scale factor of 8), so the worker loads it through the same `from_pretrained` path as real weights.
Nothing is downloaded. It produces noise-like images in a fraction of a second on a CPU. A demo
ControlNet of its UNet is built the same way, so the ControlNet paths work out of the box too.
"""

import json
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    ControlNetModel,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
    UniPCMultistepScheduler,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer


def _byte_symbols():
    """GPT-2/CLIP's reversible mapping of the 256 bytes onto printable unicode characters."""
    keep = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes, extra = list(keep), 0
    for b in range(256):
        if b not in keep:
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def build_tokenizer(folder: Path) -> CLIPTokenizer:
    """A byte-level BPE tokenizer with no merges: any text tokenizes, one token per byte."""
    folder.mkdir(parents=True, exist_ok=True)
    symbols = _byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), pad_token="<|endoftext|>", model_max_length=77
    )


def _text_config(vocab_size):
    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        projection_dim=32,
        max_position_embeddings=77,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
    )


def build_demo_model(path: Path, seed: int = 0) -> Path:
    """Build the tiny SDXL into `path` (a diffusers folder) and return the path. Another `seed` gives
    another checkpoint of the same architecture."""
    path = Path(path)
    torch.manual_seed(seed)  # the same weights on every machine
    tokenizer = build_tokenizer(path / "_tokenizer_src")
    config = _text_config(len(tokenizer))
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        transformer_layers_per_block=(1, 2),
        cross_attention_dim=64,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 32,
        sample_size=128,
    )
    vae = AutoencoderKL(
        block_out_channels=[32, 32, 64, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
        sample_size=128,
    )
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=CLIPTextModel(config),
        text_encoder_2=CLIPTextModelWithProjection(config),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=UniPCMultistepScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            timestep_spacing="leading",
            steps_offset=1,
        ),
        add_watermarker=False,
    )
    pipe.save_pretrained(path, safe_serialization=True)
    for leftover in (path / "_tokenizer_src").iterdir():
        leftover.unlink()
    (path / "_tokenizer_src").rmdir()
    return path


def build_demo_controlnet(model: Path, path: Path, seed: int = 1) -> Path:
    """A ControlNet of the demo model's UNet (diffusers' `from_unet`) saved as safetensors at `path`. Its
    zero-initialised layers get random weights, the control image's embedding strongly enough that another
    control image gives another image."""
    unet = UNet2DConditionModel.from_pretrained(model / "unet", use_safetensors=True)
    torch.manual_seed(seed)
    controlnet = ControlNetModel.from_unet(unet)
    for parameter in controlnet.controlnet_cond_embedding.parameters():
        torch.nn.init.normal_(parameter, std=0.3)
    for block in (*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block):
        for parameter in block.parameters():
            torch.nn.init.normal_(parameter, std=0.02)
    controlnet.save_pretrained(path, safe_serialization=True)
    return path
