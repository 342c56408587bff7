"""ControlNet on the worker: a ControlNet job against the bare diffusers ControlNet pipeline (goal >= 0.97x
its speed), a job switching between two cached ControlNets against one that keeps the same (goal <= 5 %
of a 20-step job after the first load), and the memory two cached ControlNets take.

In-process, on the demo model with tiny ControlNets made from its UNet (nothing downloaded):

    .venv/bin/python bench/controlnet.py [--steps 20] [--size 128] [--rounds 9]
"""

import argparse
import statistics
import time

import common
from models import rss_mib


def median_seconds(call, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    common.setup()
    import torch
    from diffusers import ControlNetModel, StableDiffusionXLControlNetPipeline, StableDiffusionXLPipeline
    from django.core.management import call_command
    from PIL import Image, ImageDraw

    from generation.kinds.controlnet import ControlNetParams
    from generation.runtime import bridge
    from tests import model_files

    folder = common.ROOT / "var" / "bench-models"
    folder.mkdir(parents=True, exist_ok=True)
    for model_id, seed in (("canny", 1), ("tile", 2)):
        path = model_files.controlnet(folder / f"controlnet-{model_id}", seed=seed)
        call_command("addmodel", str(path), "--id", model_id, "--kind", "controlnet", stdout=open("/dev/null", "w"))

    size = args.size
    control = Image.new("RGB", (size, size), (90, 90, 90))
    ImageDraw.Draw(control).rectangle((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill=(240, 240, 240))

    def job(model_id: str, auto_hint: bool = False):
        """A resolved ControlNet job (its model found in the library, as the worker does) with the image."""
        params = ControlNetParams(
            prompt="a glass house",
            width=size,
            height=size,
            steps=args.steps,
            seed=7,
            auto_hint=auto_hint,
            controlnets=[{"id": model_id, "scale": 1.0, "type": "canny"}],
        )
        resolved = bridge.resolve(params)
        resolved.images = {"control_image": control}
        return resolved

    before = rss_mib()
    worker = bridge.predictor("sdxl")
    worker.setup()
    canny, tile = job("canny"), job("tile")
    worker.predict(canny)  # first load and the pipeline made from the loaded one
    ours = median_seconds(lambda: worker.predict(canny), args.rounds)

    bare_pipe = StableDiffusionXLPipeline.from_pretrained(
        str(model_files.demo_model()), add_watermarker=False, use_safetensors=True
    )
    bare = StableDiffusionXLControlNetPipeline.from_pipe(
        bare_pipe, controlnet=ControlNetModel.from_pretrained(str(folder / "controlnet-canny"), use_safetensors=True)
    )
    bare.set_progress_bar_config(disable=True)

    def bare_call():
        with torch.inference_mode():
            bare(
                "a glass house",
                image=control,
                width=size,
                height=size,
                num_inference_steps=args.steps,
                generator=torch.Generator().manual_seed(7),
                output_type="pil",
            )

    bare_call()
    raw = median_seconds(bare_call, args.rounds)
    ours_again = median_seconds(lambda: worker.predict(canny), args.rounds)  # interleaved: drift shows
    with_hint = median_seconds(lambda: worker.predict(job("canny", auto_hint=True)), args.rounds)

    worker.predict(tile)  # both cached from here on
    same = median_seconds(lambda: worker.predict(canny), args.rounds)
    switches = []
    for index in range(args.rounds * 2):
        started = time.perf_counter()
        worker.predict(tile if index % 2 else canny)
        switches.append(time.perf_counter() - started)
    switching = statistics.median(switches)
    cached = sum(
        sum(tensor.numel() * tensor.element_size() for tensor in model.parameters())
        for model, _ in worker.controlnets.values()
    )
    files = sum(path.stat().st_size for path in folder.glob("controlnet-*/*.safetensors"))

    ours_median = statistics.median([ours, ours_again])
    print(f"{size}x{size}, {args.steps} steps, median of {args.rounds} jobs, demo model and tiny ControlNets, CPU")
    print(f"bare diffusers ControlNet pipeline        {raw * 1000:8.1f} ms")
    print(
        f"worker ControlNet job (image as given)    {ours_median * 1000:8.1f} ms  ({raw / ours_median:.3f}x the bare speed)"
    )
    print(f"worker ControlNet job with a canny hint   {with_hint * 1000:8.1f} ms  ({with_hint / ours_median - 1:+.1%})")
    print(f"job keeping the same cached ControlNet    {same * 1000:8.1f} ms")
    print(f"job switching between two cached ones     {switching * 1000:8.1f} ms  ({switching / same - 1:+.1%})")
    print(
        f"two cached ControlNets hold               {cached / 2**20:8.1f} MiB of weights for {files / 2**20:.1f} MiB of files"
    )
    print(f"RSS growth (predictor, bare pipeline, all) {rss_mib() - before:7.1f} MiB")


if __name__ == "__main__":
    main()
