"""Memory: one copy of the weights serves text2img, img2img and inpaint.

Compares, each in a fresh process, the RSS of the bare diffusers text2img pipeline after one image with
the worker's predictor after one text2img, one img2img and one inpaint job, then after a
super_resolution job (the upscaler is loaded only then). Also counts the distinct weight tensors the
three pipelines hold.

    .venv/bin/python bench/memory.py [--size 256]
"""

import argparse
import json
import subprocess
import sys

import common

CHILD = r"""
import json, os, resource, sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {root!r} + "/bench")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
import django; django.setup()
import common
from PIL import Image
def rss():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024
size = {size}
params = common.raw_params(width=size, height=size, steps=4)
out = {{}}
if {mode!r} == "bare":
    import torch
    from diffusers import StableDiffusionXLPipeline
    from django.conf import settings
    pipe = StableDiffusionXLPipeline.from_pretrained(settings.SDXL_MODEL, add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        pipe(prompt="a lighthouse", width=size, height=size, num_inference_steps=4, output_type="np")
    out["rss"] = rss()
else:
    from dataclasses import asdict
    from generation.kinds.img2img import Img2ImgParams
    from generation.kinds.inpaint import InpaintParams
    from generation.kinds.super_resolution import SuperResolutionParams
    from generation.runtime.predictors import JobInput
    from generation.runtime.sdxl import SDXLPredictor
    from generation.runtime.upscale import UpscalePredictor
    predictor = SDXLPredictor(device="cpu"); predictor.setup()
    image = Image.new("RGB", (size, size), (120, 80, 200))
    predictor.predict(JobInput(params))
    predictor.predict(JobInput(Img2ImgParams(**asdict(params), strength=0.7), images={{"init_image": image}}))
    inpaint = InpaintParams(**asdict(params), strength=0.7)
    predictor.predict(JobInput(inpaint, images={{"init_image": image, "mask_image": image}}))
    out["rss"] = rss()
    tensors = {{p.data_ptr() for pipe in predictor.pipelines.values() for name, module in pipe.components.items()
               if hasattr(module, "parameters") for p in module.parameters()}}
    single = {{p.data_ptr() for name, module in predictor.pipelines["text_to_image"].components.items()
              if hasattr(module, "parameters") for p in module.parameters()}}
    out["tensors"], out["tensors_one_pipeline"] = len(tensors), len(single)
    upscale = SuperResolutionParams(scale=4, width=size, height=size)
    UpscalePredictor(device="cpu").predict(JobInput(upscale, images={{"image": image}}))
    out["rss_after_upscale"] = rss()
print(json.dumps(out))
"""


def measure(mode, size):
    code = CHILD.format(root=str(common.ROOT), mode=mode, size=size)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=common.ROOT)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    common.setup()
    bare = measure("bare", args.size)
    worker = measure("worker", args.size)
    print()
    print(f"bare diffusers pipeline, one text2img:             {bare['rss']:8.0f} MiB RSS")
    print(
        f"worker predictor, text2img + img2img + inpaint:      {worker['rss']:8.0f} MiB RSS "
        f"({worker['rss'] / bare['rss']:.3f}x)"
    )
    print(
        f"  weight tensors held by the three pipelines:        {worker['tensors']} "
        f"(one pipeline: {worker['tensors_one_pipeline']}): shared, not copied"
    )
    print(f"after a super_resolution job (upscaler loaded lazily): {worker['rss_after_upscale']:6.0f} MiB RSS")


if __name__ == "__main__":
    main()
