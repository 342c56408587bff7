"""The model library on the worker: what switching LoRAs costs a job, what a LoRA's first load costs,
and the memory a worker holding two checkpoints and cached LoRAs uses against their weights.

In-process, on the demo model (files made locally, nothing downloaded):

    .venv/bin/python bench/models.py [--steps 20] [--size 64] [--rounds 12]
"""

import argparse
import statistics
import time
from dataclasses import replace

import common


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def tensor_bytes(predictors) -> int:
    """Bytes of the distinct weight tensors the predictors hold (shared modules counted once)."""
    seen, total = set(), 0
    for predictor in predictors:
        for pipe in predictor.pipelines.values():
            for module in pipe.components.values():
                for tensor in getattr(module, "parameters", lambda: [])():
                    if tensor.data_ptr() not in seen:
                        seen.add(tensor.data_ptr())
                        total += tensor.numel() * tensor.element_size()
    return total


def timed(predictor, job, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        predictor.predict(job)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()
    common.setup()
    from django.core.management import call_command

    from generation.runtime import bridge
    from tests import model_files

    folder = common.ROOT / "var" / "bench-models"
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "second": model_files.second_checkpoint(folder / "second"),
        "lora_a": model_files.lora(folder / "lora-a", seed=1),
        "lora_b": model_files.lora(folder / "lora-b", seed=2),
    }
    for model_id, kind, source in (
        ("second", "checkpoint", "second"),
        ("lora_a", "lora", "lora_a"),
        ("lora_b", "lora", "lora_b"),
    ):
        call_command("addmodel", str(files[source]), "--id", model_id, "--kind", kind, stdout=open("/dev/null", "w"))

    before = rss_mib()
    base = bridge.predictor("sdxl")
    base.setup()
    raw = common.raw_params(width=args.size, height=args.size, steps=args.steps)
    params = bridge.resolve(raw)  # the LoRAs resolved to their files, as the worker does before a job
    with_a = bridge.resolve(replace(raw, loras=[{"id": "lora_a", "strength": 1.0}]))
    with_b = bridge.resolve(replace(raw, loras=[{"id": "lora_b", "strength": 1.0}]))
    timed(base, params, 3)  # warm-up
    plain = timed(base, params, args.rounds)

    started = time.perf_counter()
    base.predict(with_a)
    first_load = time.perf_counter() - started - plain
    base.predict(with_b)  # both cached from here on
    always_a = timed(base, with_a, args.rounds)
    switching = []
    for index in range(args.rounds):
        started = time.perf_counter()
        base.predict(with_a if index % 2 else with_b)
        switching.append(time.perf_counter() - started)
    switching = statistics.median(switching)

    second = bridge.predictor("sdxl", "second")
    second.setup()
    second.predict(params)
    held = tensor_bytes([base, second])
    files_bytes = sum(p.stat().st_size for p in files["second"].rglob("*.safetensors"))
    files_bytes += sum(p.stat().st_size for p in common.ROOT.joinpath("var/models/tiny-sdxl").rglob("*.safetensors"))
    lora_bytes = files["lora_a"].stat().st_size + files["lora_b"].stat().st_size

    print(f"{args.size}x{args.size}, {args.steps} steps, median of {args.rounds} jobs, demo model, CPU")
    print(f"job without LoRA                         {plain * 1000:8.1f} ms")
    print(f"job with one cached LoRA (always the same) {always_a * 1000:6.1f} ms ({always_a / plain - 1:+.1%})")
    print(
        f"job switching between two cached LoRAs   {switching * 1000:8.1f} ms "
        f"({switching / always_a - 1:+.1%} against the same LoRA, {switching / plain - 1:+.1%} against none)"
    )
    print(f"first load of a LoRA (file to adapter)   {first_load * 1000:8.1f} ms, once per worker")
    print(
        f"weights held, two checkpoints            {held / 2**20:8.1f} MiB for {files_bytes / 2**20:.1f} MiB of "
        f"checkpoint files ({held / files_bytes:.2f}x); LoRA files {lora_bytes / 2**20:.2f} MiB"
    )
    print(f"RSS growth for all of it                 {rss_mib() - before:8.1f} MiB (the torch runtime included)")


if __name__ == "__main__":
    main()
