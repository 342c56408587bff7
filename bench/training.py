"""Training: a LoRA training through the API against a bare diffusers + peft loop with the same settings,
in the same run, on the same machine.

- steps/s of the job's training loop (its steps and saved states; as the trainer reports it) against the
  bare loop's (the same data, adapter, optimizer and step, nothing else), and their ratio (goal >= 0.95),
  in alternated rounds with the training's status polled during both (the machine's other work alike);
- peak memory of the training worker against the bare loop's process;
- time from submit to the first step, cold (the worker's first training: it loads the pipeline) and warm;
- generation latency (64x64 text2img, 20 steps) while a training runs on the same machine, against idle
  (BACKGROUND_WORKER_NICE=0 in the environment: the training worker at the generations' priority).

    .venv/bin/python bench/training.py [--steps 300] [--size 128] [--rounds 3]
"""

import argparse
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import time

import common
from PIL import Image, ImageDraw

PORT = 8794

BARE = r"""
import json, resource, sys, time
import numpy as np, torch, torch.nn.functional as F
from diffusers import DDPMScheduler, StableDiffusionXLPipeline
from peft import LoraConfig
from PIL import Image, ImageDraw
model, size, steps, rank, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
pipe = StableDiffusionXLPipeline.from_pretrained(model, use_safetensors=True)
for part in (pipe.unet, pipe.vae, pipe.text_encoder, pipe.text_encoder_2):
    part.requires_grad_(False)
photos = []
for index in range(5):
    image = Image.new("RGB", (size, size), (20, 30 + index * 10, 40))
    ImageDraw.Draw(image).ellipse((size // 6, size // 6, size // 2, size // 2), fill=(240, 200, 60))
    photos.append(image)
generator = torch.Generator("cpu").manual_seed(7)
with torch.no_grad():
    pixels = torch.stack([torch.from_numpy(np.asarray(p, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1) for p in photos])
    latents = pipe.vae.encode(pixels).latent_dist.sample(generator=generator) * pipe.vae.config.scaling_factor
    embeddings, _, pooled, _ = pipe.encode_prompt("photo of zxq disc", do_classifier_free_guidance=False)
torch.manual_seed(7)
pipe.unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                 target_modules=["to_k", "to_q", "to_v", "to_out.0"]), adapter_name="trained")
weights = [p for p in pipe.unet.parameters() if p.requires_grad]
optimizer = torch.optim.AdamW(weights, lr=rate, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
time_ids = torch.tensor([[size, size, 0, 0, size, size]], dtype=torch.float32)
started = time.perf_counter()
for step in range(steps):
    batch = latents[step % 5 : step % 5 + 1]
    noise = torch.randn_like(batch)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (1,))
    predicted = pipe.unet(scheduler.add_noise(batch, noise, timesteps), timesteps, embeddings,
                          added_cond_kwargs={"time_ids": time_ids, "text_embeds": pooled}, return_dict=False)[0]
    loss = F.mse_loss(predicted.float(), noise.float())
    loss.backward()
    torch.nn.utils.clip_grad_norm_(weights, 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
seconds = time.perf_counter() - started
print(json.dumps({"steps_per_second": steps / seconds, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def photo(index: int, size: int) -> str:
    image = Image.new("RGB", (size, size), (20, 30 + index * 10, 40))
    ImageDraw.Draw(image).ellipse((size // 6, size // 6, size // 2, size // 2), fill=(240, 200, 60))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def peak_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.update(
        TRAINING_RESOLUTION=str(args.size),
        TRAINING_RANK="4",
        TRAINING_SAMPLE_EVERY=str(10**6),  # one sample, after the loop
        TRAINING_SAMPLE_STEPS="4",
    )
    key = common.setup()
    from django.conf import settings

    web = common.start_web(PORT, workers=1)
    worker = common.start_worker("high", "default", "low")
    trainer = common.start_worker("training")
    images = [photo(index, args.size) for index in range(5)]

    def train(steps: int) -> tuple[str, float]:
        """Start a training; (its id, seconds from submit to its first step)."""
        started = time.perf_counter()
        body = common.post(
            common.connect(PORT, key),  # a fresh connection: the last one idled out during the bare loop
            "/api/v3/lora_fine_tune",
            {"key": key, "instance_prompt": "photo of zxq disc", "images": images, "max_train_steps": steps, "seed": 7},
        )
        assert body["status"] == "success", body
        while status(body["training_id"])["step"] < 1:
            time.sleep(0.02)
        return body["training_id"], time.perf_counter() - started

    polling = common.connect(PORT, key)

    def status(training_id: str) -> dict:
        nonlocal polling
        try:
            return common.post(polling, f"/api/v3/fine_tune_status/{training_id}", {"key": key})
        except OSError:
            polling = common.connect(PORT, key)
            return common.post(polling, f"/api/v3/fine_tune_status/{training_id}", {"key": key})

    def wait(training_id: str) -> dict:
        while (body := status(training_id))["messege"] not in ("model_ready", "failed"):
            time.sleep(0.2)
        return body

    def generation_seconds(count: int) -> list[float]:
        own = common.connect(PORT, key)
        seconds = []
        for index in range(count):
            started = time.perf_counter()
            body = common.post(
                own, "/api/v3/text2img", {"key": key, **common.TINY, "num_inference_steps": 20, "seed": index}
            )
            assert body["status"] == "success", body
            seconds.append(time.perf_counter() - started)
        return seconds

    def bare_loop(training_id: str) -> dict:
        """The bare loop in a process of its own at the training worker's priority, while the training's
        status is polled as a job's is."""
        process = subprocess.Popen(
            [sys.executable, "-c", BARE, str(settings.SDXL_MODEL), str(args.size), str(args.steps), "4", "1e-4"],
            preexec_fn=lambda: os.nice(settings.BACKGROUND_WORKER_NICE),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        while process.poll() is None:
            status(training_id)
            time.sleep(0.2)
        return json.loads(process.stdout.read().strip().splitlines()[-1])

    from generation.models import Job

    jobs, bare, firsts = [], [], []
    try:
        for _ in range(args.rounds):  # alternated, so that both see the machine alike
            training_id, first = train(args.steps)
            done = wait(training_id)
            firsts.append(first)
            jobs.append(Job.objects.get(params__training_id=training_id).details["steps_per_second"])
            bare.append(bare_loop(training_id))
        job_peak = peak_mib(trainer.pid)
        generation_seconds(3)  # warm
        idle = generation_seconds(10)
        long_id, _ = train(1000)  # the plan's most: runs through the generations below
        busy = generation_seconds(10)
        common.post(common.connect(PORT, key), f"/api/v3/cancel_training/{long_id}", {"key": key})
    finally:
        common.drain()
        common.stop(web, worker, trainer)
    job_speed, bare_speed = statistics.median(jobs), statistics.median(b["steps_per_second"] for b in bare)
    nice = os.environ.get("BACKGROUND_WORKER_NICE", "10 (the default)")
    print(f"\nTraining at {args.size}x{args.size}, UNet LoRA rank 4, {args.steps} steps, this machine's CPU, ", end="")
    print(f"median of {args.rounds} alternated rounds; the training worker at nice {nice}")
    print(f"- job: {job_speed:.2f} steps/s; bare diffusers + peft loop: {bare_speed:.2f} steps/s; ", end="")
    print(f"ratio {job_speed / bare_speed:.3f} (goal >= 0.95)")
    print(f"- peak memory: training worker {job_peak:.0f} MiB; bare loop {max(b['peak_mib'] for b in bare):.0f} MiB")
    print(f"- submit to first step: cold {firsts[0]:.2f} s (the worker loads the pipeline), ", end="")
    print(f"warm {statistics.median(firsts[1:] or firsts):.2f} s")
    print(f"- final loss {done['loss']}, {len(done['samples'])} sample(s)")
    idle_p50, busy_p50 = statistics.median(idle), statistics.median(busy)
    print(f"- text2img 64x64, 20 steps: idle p50 {idle_p50:.2f} s, while training p50 {busy_p50:.2f} s: ", end="")
    print(f"ratio {busy_p50 / idle_p50:.2f}")


if __name__ == "__main__":
    main()
