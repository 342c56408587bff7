"""Real-ESRGAN-family upscalers: the published architectures, loading the official weight files.

The architectures are small and public (RRDBNet for the RealESRGAN/RealESRNet x4plus, x4plus_anime_6B
and x2plus models; SRVGGNetCompact for realesr-general-x4v3). Keeping them here avoids spandrel,
which needs torchvision. State-dict keys match the official `.pth` files (`params_ema` or `params`),
so real weights load unchanged. In demo mode (UPSCALER_DEMO) a missing network is replaced by a plain
Lanczos resize (the bridge gives no weights), said as such in the answer.
"""

import logging
import time
from pathlib import Path

import numpy as np
import torch
from django.conf import settings
from PIL import Image
from torch import nn
from torch.nn import functional as F

from generation.runtime.predictors import JobInput, LocalModel, Prediction, Predictor, pick_device

logger = logging.getLogger(__name__)

# model id -> (architecture, native scale)
MODELS = {
    "RealESRGAN_x4plus": ("rrdb", 4),
    "RealESRNet_x4plus": ("rrdb", 4),
    "RealESRGAN_x4plus_anime_6B": ("rrdb", 4),
    "RealESRGAN_x2plus": ("rrdb", 2),
    "realesr-general-x4v3": ("compact", 4),
}


class ResidualDenseBlock(nn.Module):
    def __init__(self, num_feat=64, num_grow_ch=32):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, num_feat, num_grow_ch=32):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN's generator; scale 2 works on a pixel-unshuffled input like the official x2plus model."""

    def __init__(self, scale=4, num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23, num_grow_ch=32):
        super().__init__()
        self.scale = scale
        in_channels = num_in_ch * (4 if scale == 2 else 1)
        self.conv_first = nn.Conv2d(in_channels, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        feat = F.pixel_unshuffle(x, 2) if self.scale == 2 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


class SRVGGNetCompact(nn.Module):
    """The compact VGG-style network of realesr-general-x4v3 (PReLU activations, pixel shuffle)."""

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32, upscale=4):
        super().__init__()
        self.upscale = upscale
        layers = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), nn.PReLU(num_parameters=num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.PReLU(num_parameters=num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x):
        out = x
        for layer in self.body:
            out = layer(out)
        return self.upsampler(out) + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


def _network_for(state: dict, architecture: str, scale: int) -> nn.Module:
    """Instantiate the architecture at the size the weights describe (blocks/convs counted from keys)."""
    if architecture == "rrdb":
        num_block = 1 + max(int(key.split(".")[1]) for key in state if key.startswith("body."))
        num_feat = state["conv_first.weight"].shape[0]
        return RRDBNet(scale=scale, num_feat=num_feat, num_block=num_block)
    num_feat = state["body.0.weight"].shape[0]
    num_conv = (max(int(key.split(".")[1]) for key in state if key.startswith("body.")) - 2) // 2
    return SRVGGNetCompact(num_feat=num_feat, num_conv=num_conv, upscale=scale)


class Upscaler:
    """One loaded upscaling network; `upscale()` works in tiles so memory stays bounded. Without weights
    (demo mode), a plain Lanczos resize (no network at all)."""

    def __init__(self, model_id: str, weights: LocalModel | None, device: str):
        architecture, self.native_scale = MODELS[model_id]
        self.device, self.model_id, self.network = device, model_id, None
        if weights is None:
            return
        checkpoint = torch.load(weights.path, map_location="cpu", weights_only=True)
        state = checkpoint.get("params_ema") or checkpoint.get("params") or checkpoint
        self.network = _network_for(state, architecture, self.native_scale)
        self.network.load_state_dict(state, strict=True)
        self.network.eval().to(device)

    @torch.inference_mode()
    def upscale(self, image: Image.Image, scale: int) -> Image.Image:
        if self.network is None:
            return image.convert("RGB").resize((image.width * scale, image.height * scale), Image.LANCZOS)
        tile, pad = settings.UPSCALER_TILE, settings.UPSCALER_TILE_PAD
        x = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        x = x.to(self.device)
        _, _, height, width = x.shape
        s = self.native_scale
        out = torch.zeros((1, 3, height * s, width * s), device=self.device)
        for top in range(0, height, tile):
            for left in range(0, width, tile):
                # each tile with a margin of context, cropped back after upscaling
                t0, l0 = max(top - pad, 0), max(left - pad, 0)
                t1, l1 = min(top + tile + pad, height), min(left + tile + pad, width)
                patch = x[:, :, t0:t1, l0:l1]
                ph, pw = patch.shape[2], patch.shape[3]
                if s == 2 and (ph % 2 or pw % 2):  # pixel_unshuffle needs even sizes
                    patch = F.pad(patch, (0, pw % 2, 0, ph % 2), mode="replicate")
                result = self.network(patch)
                bottom, right = min(top + tile, height), min(left + tile, width)
                out[:, :, top * s : bottom * s, left * s : right * s] = result[
                    :, :, (top - t0) * s : (bottom - t0) * s, (left - l0) * s : (right - l0) * s
                ]
        array = (out[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype("uint8")
        result = Image.fromarray(array)
        if scale != s:
            result = result.resize((width * scale, height * scale), Image.LANCZOS)
        return result


class UpscalePredictor(Predictor):
    """The super_resolution predictor (also a generation's `upscale` post-step): each upscaling network
    is loaded on its first job and kept (a worker that never upscales never loads one)."""

    def __init__(self, *, device: str, weights=None):
        super().__init__(device=device, weights=weights)
        self.upscalers: dict[tuple[str, Path | None], Upscaler] = {}

    @property
    def model_name(self) -> str:
        return "Real-ESRGAN"

    def setup(self):
        self.device = pick_device(self.device)

    def _upscaler(self, model_id: str, weights: LocalModel | None) -> Upscaler:
        key = (model_id, weights.path if weights else None)
        if key not in self.upscalers:
            self.upscalers[key] = Upscaler(model_id, weights, self.device)
            logger.info("Loaded upscaler %s on %s", model_id, self.device)
        return self.upscalers[key]

    def predict(self, job: JobInput, on_step=None) -> Prediction:
        """Upscale the job's input image by its `scale` with its upscaler."""
        self.setup()
        started = time.perf_counter()
        params = job.params
        upscaler = self._upscaler(params.upscaler, job.upscalers.get(params.upscaler))
        result = upscaler.upscale(job.images["image"], params.scale)
        return Prediction(images=[result], seeds=[0], seconds=time.perf_counter() - started)
