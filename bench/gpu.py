"""SDXL speed on the fast path: a full-size SDXL base (the real architecture, random weights, built
locally) timed at batch 1 and 4, eager, then compiled.

    .venv/bin/python bench/gpu.py                      # on a GPU: 1024x1024, 30 steps, fp16
    .venv/bin/python bench/gpu.py --size 256 --steps 2 # CPU smoke test (the defaults on a CPU)
    options: --dtype fp16|bf16|fp32  --compile max-autotune|default|""  --no-fuse --no-channels-last
"""

import argparse
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def timed(pipe, size, steps, batch, repeat):
    import torch

    def once():
        pipe(
            prompt=["a lighthouse at dusk"] * batch,
            num_inference_steps=steps,
            width=size,
            height=size,
            guidance_scale=7.5,
            output_type="np",
        )
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    once()  # warm-up (compilation, autotuning)
    started = time.perf_counter()
    for _ in range(repeat):
        once()
    return (time.perf_counter() - started) / repeat


def peak_memory() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB GPU"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB RSS"


def main():
    import django
    import torch

    django.setup()
    import sdxl_configs

    from generation.runtime import acceleration

    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1024 if cuda else 256)
    parser.add_argument("--steps", type=int, default=30 if cuda else 2)
    parser.add_argument("--repeat", type=int, default=3 if cuda else 1)
    parser.add_argument("--dtype", default="fp16" if cuda else "fp32")
    parser.add_argument("--compile", default="max-autotune" if cuda else "")
    parser.add_argument("--no-fuse", action="store_true")
    parser.add_argument("--no-channels-last", action="store_true")
    args = parser.parse_args()

    device = "cuda" if cuda else "cpu"
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    name = torch.cuda.get_device_name() if cuda else f"CPU, {os.cpu_count()} cores"
    print(f"device: {name}; torch {torch.__version__}; {args.size}x{args.size}, {args.steps} steps, {args.dtype}")
    started = time.perf_counter()
    pipe = sdxl_configs.build_pipeline(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    if dtype == torch.float16:
        pipe.vae.to(torch.float32)  # random weights have no fp16-safe VAE: decode in fp32, as fp16-fix avoids
    params = sum(p.numel() for p in pipe.unet.parameters()) / 1e9
    print(f"built full-size SDXL (UNet {params:.2f} B parameters) in {time.perf_counter() - started:.1f}s")

    options = acceleration.Options(
        dtype=args.dtype,
        channels_last=not args.no_channels_last,
        fuse_qkv=not args.no_fuse,
        compile_mode="",
        vae_tiling=True,
        warmup_sizes=(),
    )
    acceleration.apply(pipe, options)
    rows = []
    for label in ["eager"] + (["compiled"] if args.compile else []):
        if label == "compiled":
            started = time.perf_counter()
            acceleration.apply_compile(pipe, args.compile)
            timed(pipe, args.size, args.steps, 1, 0)
            print(f"compile + first call: {time.perf_counter() - started:.1f}s (done once, at worker start)")
        one = timed(pipe, args.size, args.steps, 1, args.repeat)
        four = timed(pipe, args.size, args.steps, 4, args.repeat)
        rows.append((label, one, 4 / four))
    print()
    print("| path | s/image, batch 1 | images/s, batch 4 |")
    print("| --- | --- | --- |")
    for label, one, per_second in rows:
        print(f"| {label} | {one:.2f} | {per_second:.2f} |")
    print(f"peak memory: {peak_memory()}")


if __name__ == "__main__":
    main()
