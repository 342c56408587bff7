"""SDXL at 1024² on a GPU, setting by setting, and the worker taking jobs through the API against the
bare pipeline, in one run of a few minutes (the device machines are lent for minutes).

A full-size SDXL base (the published architecture, bench/sdxl_configs.py, random weights: nothing is
downloaded) is built on the device and saved, then loaded the way the worker loads it
(`SDXLPredictor.setup()`: the same options, fast path and warm-up). For 1024² at 20 and 30 steps it
prints seconds per image at batch 1, images per second at the best batch size, peak GPU memory and
how many images came out invalid (NaN or black), for each fast-path setting:

    fp16, classic attention -> fp16 + SDPA (the stock VAE decodes in fp32) -> bf16 + SDPA
    -> + channels_last -> + fused QKV (the worker's default on CUDA) -> + torch.compile

(the full sweep of batch sizes on the worker's default; the other settings at batch 1 and its best
batch), then the worker's own figure: a real web server and RQ worker (SQLite and a local
redis-server on the device), 1 + 2B jobs posted to /api/v3/text2img, against the bare pipeline at
batch B in the same run. The compiled row is last: it is compiled at load with the worker's warm-up
(its size, batch 1, then its largest batch). Parts that would overrun `--budget` are skipped and
marked so; every finished line is printed (and written to `--out`) as it comes.

    python bench/gpu.py --out results.md       # on the GPU machine: bench/gpu_device.sh
    python bench/gpu.py --smoke                # a CPU check of the whole script on the demo model
"""

import argparse
import datetime
import gc
import logging
import os
import resource
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import common

from config import redis_server

PROMPT = "a lighthouse on a cliff at dusk, oil painting"


@dataclass
class Row:
    label: str
    per_image: dict = field(default_factory=dict)  # steps -> seconds per image at batch 1
    per_second: dict = field(default_factory=dict)  # (batch, steps) -> images per second
    peak: dict = field(default_factory=dict)  # batch -> GiB
    invalid: int = 0
    images: int = 0
    note: str = ""

    def best_batch(self, steps: int) -> int:
        rates = {batch: rate for (batch, at), rate in self.per_second.items() if at == steps}
        return max(rates, key=rates.get) if rates else 1


class Bench:
    def __init__(self, args, out):
        import torch

        self.torch = torch
        self.args = args
        self.out = out
        self.cuda = torch.cuda.is_available()
        self.deadline = time.monotonic() + args.budget
        self.step_cost = None  # seconds per image-step, learnt from the first runs

    def say(self, line: str = ""):
        print(line, flush=True)
        if self.out:
            with open(self.out, "a") as out:
                out.write(line + "\n")

    def affordable(self, batch: int, steps: int, runs: int = 1) -> bool:
        """Whether `runs` calls fit in what is left of the budget (by the time per image-step so far)."""
        if self.step_cost is None:
            return True
        return time.monotonic() + 1.2 * self.step_cost * batch * steps * runs < self.deadline

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def peak_gib(self) -> float:
        if self.cuda:
            return self.torch.cuda.max_memory_allocated() / 2**30
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    def reset_peak(self):
        if self.cuda:
            self.torch.cuda.reset_peak_memory_stats()

    def generate(self, pipe, batch: int, steps: int, row: Row | None = None) -> float:
        """One pipeline call as the worker makes it (a CPU generator per image, numpy out); seconds."""
        from generation.runtime.sdxl import valid_image

        torch = self.torch
        size = self.args.size
        self.sync()
        started = time.perf_counter()
        with torch.inference_mode():
            images = pipe(
                prompt=[f"{PROMPT}, view {i}" for i in range(batch)],
                num_inference_steps=steps,
                guidance_scale=7.0,
                width=size,
                height=size,
                generator=[torch.Generator("cpu").manual_seed(i) for i in range(batch)],
                output_type="np",
            ).images
        self.sync()
        seconds = time.perf_counter() - started
        if row is not None:
            row.images += len(images)
            row.invalid += sum(not valid_image(image) for image in images)
        if steps >= 10:
            self.step_cost = seconds / (batch * steps)
        return seconds

    def measure(self, pipe, row: Row, batches) -> Row:
        """Batch 1 at each step count, then images/s at `batches` (the first step count), then the
        best batch at the others."""
        steps_list = self.args.steps
        self.generate(pipe, 1, 2)  # the first call of a setting: allocations, kernel choices
        self.reset_peak()
        for steps in steps_list:
            if not self.affordable(1, steps, self.args.repeat):
                row.note = "budget: stopped early"
                return row
            runs = [self.generate(pipe, 1, steps, row) for _ in range(self.args.repeat)]
            row.per_image[steps] = min(runs)
            row.per_second[(1, steps)] = 1 / min(runs)
        row.peak[1] = self.peak_gib()
        for batch in batches:
            if batch == 1:
                continue
            if not self.affordable(batch, steps_list[0]):
                row.note = f"budget: batches from {batch} skipped"
                break
            self.reset_peak()
            row.per_second[(batch, steps_list[0])] = batch / self.generate(pipe, batch, steps_list[0], row)
            row.peak[batch] = self.peak_gib()
        best = row.best_batch(steps_list[0])
        for steps in steps_list[1:]:
            if best > 1 and self.affordable(best, steps):
                row.per_second[(best, steps)] = best / self.generate(pipe, best, steps, row)
        self.say(f"  {self.line(row)}")
        return row

    def line(self, row: Row) -> str:
        steps_list = self.args.steps
        cells = [row.label]
        cells += [f"{row.per_image[s]:.2f}" if s in row.per_image else "–" for s in steps_list]
        best = row.best_batch(steps_list[0])
        for steps in steps_list:
            rate = row.per_second.get((best, steps))
            cells.append(f"{rate:.2f} (batch {best})" if rate else "–")
        peaks = "; ".join(f"{gib:.1f} (batch {batch})" for batch, gib in sorted(row.peak.items()))
        cells += [peaks or "–", f"{row.invalid}/{row.images}", row.note]
        return "| " + " | ".join(cells) + " |"

    def table(self, rows):
        steps = self.args.steps
        memory = "peak GPU GiB" if self.cuda else "peak RSS GiB"
        header = ["setting"] + [f"s/image, batch 1, {s} steps" for s in steps]
        header += [f"images/s, best batch, {s} steps" for s in steps] + [memory, "invalid images", "note"]
        self.say("| " + " | ".join(header) + " |")
        self.say("|" + " --- |" * len(header))
        for row in rows:
            self.say(self.line(row))


def configure(**values):
    """The worker's settings for the next predictor load, in this process."""
    from django.conf import settings

    defaults = {
        "SDXL_DTYPE": "bf16",
        "SDXL_CHANNELS_LAST": "on",
        "SDXL_FUSE_QKV": "on",
        "SDXL_COMPILE": "",
        "SDXL_WARMUP_SIZES": [],
        "WORKER_MAX_BATCH": 1,
    }
    for name, value in {**defaults, **values}.items():
        setattr(settings, name, value)


def load(bench: Bench, model: Path, **values):
    """A predictor loaded as the worker loads it, with these settings; (predictor, seconds)."""
    from django.conf import settings

    from generation.runtime.sdxl import SDXLPredictor

    configure(**values)
    bench.reset_peak()
    started = time.perf_counter()
    predictor = SDXLPredictor(device=settings.SDXL_DEVICE, weights=model)
    predictor.setup()
    bench.sync()
    return predictor, time.perf_counter() - started


def attempt(bench: Bench, what: str, function, *args):
    """Run one part of the benchmark; a failure is printed and the rest still runs (one device run)."""
    try:
        return function(*args)
    except Exception:
        bench.say(f"{what} failed:\n{traceback.format_exc()}")
        release(bench)
        return None


def release(bench: Bench):
    gc.collect()
    if bench.cuda:
        bench.torch.cuda.empty_cache()


def build_model(bench: Bench, folder: Path) -> str:
    """The full-size SDXL base with random weights (`--smoke`: the demo model), saved to `folder`."""
    torch = bench.torch
    if bench.args.smoke:
        from generation.runtime.demo_model import build_demo_model

        build_demo_model(folder)
        return "the demo model (tiny SDXL architecture)"
    import sdxl_configs

    pipe = sdxl_configs.build_pipeline("cuda" if bench.cuda else "cpu", torch.bfloat16)
    pipe.save_pretrained(folder)
    parameters = sum(p.numel() for p in pipe.unet.parameters()) / 1e9
    del pipe
    release(bench)
    return f"full-size SDXL base, random weights (UNet {parameters:.2f} B parameters)"


def eager_rows(bench: Bench, model: Path) -> list[Row]:
    """The worker's eager path, then each setting taken off in turn (two loads: bf16 and fp16)."""
    torch = bench.torch
    batches = bench.args.batches
    predictor, seconds = load(bench, model)
    bench.say(f"loaded as the worker does (bf16, SDPA, channels_last, fused QKV) in {seconds:.1f} s")
    pipe = predictor.pipelines["text_to_image"]
    full = bench.measure(pipe, Row("+ fused QKV: the worker's eager default"), batches)
    best = [full.best_batch(bench.args.steps[0])]
    pipe.unfuse_qkv_projections()
    fused_off = bench.measure(pipe, Row("+ channels_last"), best)
    for module in (pipe.unet, pipe.vae):
        module.to(memory_format=torch.contiguous_format)
    bf16 = bench.measure(pipe, Row("bf16 + SDPA"), best)
    del predictor, pipe
    release(bench)

    rows = [bf16, fused_off, full]
    if bench.affordable(best[0], bench.args.steps[0], 4):
        rows[:0] = attempt(bench, "fp16 rows", fp16_rows, bench, model, best) or []
    return rows


def fp16_rows(bench: Bench, model: Path, batches) -> list[Row]:
    """fp16 (the stock VAE config asks diffusers to decode in fp32), with SDPA, then classic attention."""
    from diffusers.models.attention_processor import AttnProcessor

    predictor, _ = load(bench, model, SDXL_DTYPE="fp16", SDXL_CHANNELS_LAST="off", SDXL_FUSE_QKV="off")
    pipe = predictor.pipelines["text_to_image"]
    fp16 = bench.measure(pipe, Row("fp16 + SDPA (VAE decoded in fp32)"), batches)
    for module in (pipe.unet, pipe.vae):
        module.set_attn_processor(AttnProcessor())
    classic = bench.measure(pipe, Row("fp16, classic attention (VAE in fp32)"), batches)
    del predictor, pipe
    release(bench)
    return [classic, fp16]


def compiled_row(bench: Bench, model: Path, batch: int) -> Row:
    """torch.compile as the worker does it: compiled in place at load, warmed up for the size at
    batch 1 and at its largest batch, so no job compiles anything."""
    mode, size = bench.args.compile, bench.args.size
    predictor, seconds = load(
        bench, model, SDXL_COMPILE=mode, SDXL_WARMUP_SIZES=[f"{size}x{size}"], WORKER_MAX_BATCH=batch
    )
    bench.say(f"compiled ({mode}) and warmed up at load (batch 1 and {batch}) in {seconds:.1f} s")
    row = bench.measure(
        predictor.pipelines["text_to_image"], Row(f"+ torch.compile ({mode}), warmed up at load"), sorted({1, batch})
    )
    row.note = (row.note + f"; load + compile {seconds:.0f} s").lstrip("; ")
    del predictor
    release(bench)
    return row


def worker_figure(bench: Bench, model: Path, key: str, batch: int, bare: Row):
    """The real web server and worker: 1 + 2*batch jobs posted at once (the first runs alone, the rest
    in batches of `batch`), against the bare pipeline's rate at that batch in this run."""
    from generation.models import Job

    steps = bench.args.steps[0]
    port = redis_server.free_port()
    web = common.start_web(port, workers=1)
    worker = common.start_worker(
        "default",
        SDXL_MODEL=str(model),
        SDXL_DTYPE="bf16",
        SDXL_CHANNELS_LAST="on",
        SDXL_FUSE_QKV="on",
        SDXL_COMPILE="",
        WORKER_MAX_BATCH=str(batch),
    )
    try:
        conn = common.connect(port, key)
        started = time.perf_counter()
        ids = []
        for i in range(1 + 2 * batch):
            body = {
                "key": key,
                "prompt": f"{PROMPT}, view {i}",
                "width": bench.args.size,
                "height": bench.args.size,
                "num_inference_steps": steps,
                "guidance_scale": 7,
                "seed": i,
                "instant_response": "yes",
            }
            ids.append(common.post(conn, "/api/v3/text2img", body)["id"])
        pending = set(ids)
        while pending:
            time.sleep(0.2)
            for job_id in list(pending):
                answer = common.post(conn, f"/api/v3/fetch/{job_id}", {"key": key})
                if answer["status"] in ("success", "error", "failed"):
                    assert answer["status"] == "success", answer
                    pending.discard(job_id)
        wall = time.perf_counter() - started
        jobs = list(Job.objects.filter(pk__in=ids[1:]))
        span = (max(j.finished_at for j in jobs) - min(j.started_at for j in jobs)).total_seconds()
    finally:
        common.stop(web, worker)
    batches = sorted(Counter(job.generation_time for job in jobs).values(), reverse=True)  # one time per call
    worker_rate, bare_rate = len(jobs) / span, bare.per_second.get((batch, steps))
    bench.say(
        f"worker through the API: {len(jobs)} jobs after the first, run in batches of {batches}: "
        f"{worker_rate:.2f} images/s (first start to last finish)"
        + (
            f" against the bare pipeline's {bare_rate:.2f} at batch {batch}: {worker_rate / bare_rate:.2f}x"
            if bare_rate
            else ""
        )
    )
    bench.say(f"  all {len(ids)} jobs, from the first POST to the last fetch answering success: {wall:.1f} s")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="CPU check: demo model, 64², 2-3 steps")
    parser.add_argument("--size", type=int)
    parser.add_argument("--steps", type=lambda text: [int(s) for s in text.split(",")])
    parser.add_argument("--batches", type=lambda text: [int(b) for b in text.split(",")])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--compile", default="default", help='a torch.compile mode, "" for none')
    parser.add_argument("--compile-seconds", type=float, default=200, help="left in the budget to try compiling")
    parser.add_argument("--no-worker", action="store_true")
    parser.add_argument("--budget", type=float, default=420, help="seconds; later parts are skipped past it")
    parser.add_argument("--out", help="also write the lines to this file")
    args = parser.parse_args()
    args.size = args.size or (64 if args.smoke else 1024)
    args.steps = args.steps or ([2, 3] if args.smoke else [20, 30])
    args.batches = args.batches or ([1, 2, 4] if args.smoke else [1, 2, 4, 8])

    folder = Path(tempfile.mkdtemp(prefix="sdxl-random-"))
    os.environ["SDXL_MODEL"] = str(folder)  # the worker and the library's default checkpoint
    key = common.setup()
    import diffusers
    import torch
    import transformers

    import generation.runtime  # noqa: F401  (its filters drop two library warnings before they load)

    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()  # e.g. "float16 cannot run on cpu" in --smoke
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)  # diffusers' upcast_vae, on the fp16 rows
    logging.getLogger("generation").setLevel(logging.WARNING)  # this script says what was loaded

    bench = Bench(args, args.out)
    name = torch.cuda.get_device_name() if bench.cuda else f"CPU, {os.cpu_count()} cores"
    bench.say(
        f"{datetime.date.today()}: {name}; torch {torch.__version__} (CUDA {torch.version.cuda}), "
        f"diffusers {diffusers.__version__}, Python {sys.version.split()[0]}"
    )
    try:
        started = time.perf_counter()
        described = build_model(bench, folder)
        bench.say(
            f"built and saved {described} in {time.perf_counter() - started:.1f} s; {args.size}², steps {args.steps}"
        )

        rows = eager_rows(bench, folder)
        full = rows[-1]
        batch = full.best_batch(args.steps[0])
        if args.no_worker:
            pass
        elif bench.affordable(batch, args.steps[0], 6):
            attempt(bench, "worker through the API", worker_figure, bench, folder, key, batch, full)
        else:
            bench.say("worker through the API: skipped (budget)")
        if not args.compile:
            pass
        elif bench.deadline - time.monotonic() > args.compile_seconds:
            rows.append(
                attempt(bench, "torch.compile", compiled_row, bench, folder, batch) or Row("+ torch.compile: failed")
            )
        else:
            bench.say("torch.compile: skipped (budget)")
        bench.say()
        bench.table(rows)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # the saved weights: gigabytes


if __name__ == "__main__":
    main()
