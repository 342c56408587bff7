"""The LoRA trainer: the approach of diffusers' train_dreambooth_lora_sdxl.py in our own code. The VAE and
text encoders are frozen and their outputs computed once (latents of the photos, prompt embeddings); a
LoRA on the UNet's attention (and, for DreamBooth, on both text encoders' attention) learns to predict the
noise added to the photos' latents; with a class prompt, class images made by the base model first keep
the class from drifting (prior preservation). bf16, gradient checkpointing and 8-bit Adam (when
bitsandbytes is installed) on CUDA; fp32 on the CPU, where a given seed gives the same LoRA every time.

Every `checkpoint_every` steps its state — the LoRA, the optimizer, the step and the random state — is
handed to `job.save_state`; a later try of the same job resumes from it, bit for bit on the CPU. The LoRA
is saved in the kohya layout that A1111, ComfyUI and diffusers all load.
"""

import logging
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, StableDiffusionXLPipeline
from diffusers.training_utils import compute_snr
from diffusers.utils import convert_state_dict_to_kohya
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from PIL import Image
from safetensors.torch import load_file, save_file

from generation.runtime.predictors import GenerationError, JobInput, Prediction, Predictor, pick_device

try:  # optional (the `cuda` extra): 8-bit Adam states on a GPU
    import bitsandbytes
except ImportError:
    bitsandbytes = None

logger = logging.getLogger(__name__)

ADAPTER = "trained"  # the adapters' name while they train ("train" is a method of every torch module)
UNET_TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
LORA_FILE, STATE_FILE = "lora.safetensors", "training_state.pt"
OUTPUT_FILE = "lora.safetensors"
PARTS = ("unet", "text_encoder", "text_encoder_2")


class LoraTrainer(Predictor):
    """Keeps the last base checkpoint it trained on loaded; each training adds its adapters and removes
    them when it ends, so the next one starts from the base weights."""

    def __init__(self, *, device: str, weights=None):
        super().__init__(device=device, weights=weights)
        self.pipe = None
        self.loaded = None  # the checkpoint folder the pipeline holds

    @property
    def model_name(self) -> str:
        return "lora-trainer"

    def setup(self):
        self.device = pick_device(self.device)

    def predict(self, job: JobInput, on_step=None) -> Prediction:
        if job.checkpoint is None:
            raise GenerationError("Failed: the training names no base model")
        started = time.perf_counter()
        pipe = self._pipeline(job.checkpoint.path)
        try:
            run = TrainingRun(pipe, job, self.device, on_step or (lambda *args, **kwargs: None))
            sample, model = run.train()
        finally:
            _remove_adapters(pipe)
        return Prediction(images=[sample], seeds=[job.params.seed], seconds=time.perf_counter() - started, model=model)

    def _pipeline(self, folder: Path) -> StableDiffusionXLPipeline:
        if self.loaded != folder:
            self.pipe = None
            dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
            pipe = StableDiffusionXLPipeline.from_pretrained(folder, torch_dtype=dtype, use_safetensors=True)
            pipe.set_progress_bar_config(disable=True)
            for part in (pipe.unet, pipe.vae, pipe.text_encoder, pipe.text_encoder_2):
                part.requires_grad_(False)
            pipe.vae.to(dtype=torch.float32)  # the photos' latents in full precision (SDXL's VAE overflows in half)
            self.pipe, self.loaded = pipe.to(self.device), folder
        return self.pipe


def _remove_adapters(pipe):
    for name in PARTS:
        part = getattr(pipe, name)
        if ADAPTER in getattr(part, "peft_config", {}):
            if name == "unet":
                part.delete_adapters(ADAPTER)
            else:
                part.delete_adapter(ADAPTER)


class TrainingRun:
    """One training: its data prepared once, then its steps, samples and saved states."""

    def __init__(self, pipe, job: JobInput, device: str, on_step):
        self.pipe, self.job, self.params, self.device, self.on_step = pipe, job, job.params, device, on_step
        self.cuda = device.startswith("cuda")
        native = pipe.unet.config.sample_size * pipe.vae_scale_factor
        self.size = min(self.params.resolution, native)
        self.parts = PARTS if self.params.dreambooth else PARTS[:1]
        self.dtype = pipe.unet.dtype  # once: diffusers looks it up over every parameter (7% of a CPU step)

    def train(self) -> tuple[Image.Image, Path]:
        params, pipe = self.params, self.pipe
        class_images = self._class_images()  # before any training randomness is drawn
        torch.manual_seed(params.seed)
        trainable = self._add_adapters()
        optimizer = self._optimizer(trainable)
        latents = self._latents([*self.job.images.values()], seed=params.seed)
        prior = self._latents(class_images, seed=params.seed + 1) if class_images else None
        prompts = self._prompts()
        scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        step = first = self._resume(optimizer)
        self.on_step(step, params.steps, phase="training_started")
        if self.cuda:
            pipe.unet.enable_gradient_checkpointing()
        training_seconds = 0.0  # the steps and saved states, not the samples
        while step < params.steps:
            started = time.perf_counter()
            loss = self._step(step, latents, prior, prompts, scheduler, trainable, optimizer)
            step += 1
            if step % params.checkpoint_every == 0 and step < params.steps and self.job.save_state:
                self._save_state(step, optimizer)
            training_seconds += time.perf_counter() - started
            sample = self.sample() if step % params.sample_every == 0 or step == params.steps else None
            self.on_step(step, params.steps, details={"loss": round(loss, 6)}, sample=sample)
        if self.cuda:
            pipe.unet.disable_gradient_checkpointing()
        speed = round((step - first) / training_seconds, 3) if training_seconds else None
        self.on_step(params.steps, params.steps, details={"steps_per_second": speed}, phase="training_success")
        final = self.sample()
        self.on_step(params.steps, params.steps, phase="trained_model_compressing")
        return final, self._export()

    # preparing -----------------------------------------------------------------------------------

    def _class_images(self) -> list[Image.Image]:
        """Prior preservation's images of the class, by the base model (seeded: the same on a resume)."""
        params = self.params
        made = []
        for index in range(params.class_images):
            generator = torch.Generator("cpu").manual_seed(params.seed + 1000 + index)
            made += self.pipe(
                prompt=params.class_prompt,
                num_inference_steps=params.class_steps,
                height=self.size,
                width=self.size,
                generator=generator,
            ).images
        return made

    def _add_adapters(self) -> list[dict]:
        """The LoRAs (the global random state draws their first matrices), as the optimizer's groups."""
        rank, groups = self.params.rank, []
        for name in self.parts:
            part = getattr(self.pipe, name)
            targets = UNET_TARGETS if name == "unet" else TEXT_TARGETS
            part.add_adapter(
                LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=targets),
                adapter_name=ADAPTER,
            )
            weights = [p for p in part.parameters() if p.requires_grad]
            for weight in weights:
                weight.data = weight.data.float()  # the LoRA learns in fp32 whatever the base's precision
            rate = self.params.learning_rate if name == "unet" else self.params.text_encoder_learning_rate
            groups.append({"params": weights, "lr": rate})
        return groups

    def _optimizer(self, groups: list[dict]):
        adam = bitsandbytes.optim.AdamW8bit if self.cuda and bitsandbytes else torch.optim.AdamW
        return adam(groups, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)

    def _latents(self, photos: list[Image.Image], seed: int) -> torch.Tensor:
        """Each photo at the training size as a latent, encoded once (a seeded sample of the VAE's)."""
        vae, generator = self.pipe.vae, torch.Generator("cpu").manual_seed(seed)
        encoded = []
        with torch.no_grad():
            for photo in photos:
                if photo.size != (self.size, self.size):
                    photo = photo.resize((self.size, self.size), Image.LANCZOS)
                pixels = torch.from_numpy(_array(photo)).permute(2, 0, 1)[None].to(self.device, torch.float32)
                sample = vae.encode(pixels).latent_dist.sample(generator=generator.manual_seed(seed + len(encoded)))
                encoded.append(sample * vae.config.scaling_factor)
        return torch.cat(encoded).to(self.dtype)

    def _prompts(self) -> dict:
        """Token ids of the instance (and class) prompt; their embeddings once, unless the text encoders
        train (DreamBooth), when each step encodes them."""
        prompts = {"instance": self.params.instance_prompt}
        if self.params.class_images:
            prompts["class"] = self.params.class_prompt
        tokens = {key: self._tokens(text) for key, text in prompts.items()}
        if self.params.dreambooth:
            return {"tokens": tokens}
        with torch.no_grad():
            return {"embeddings": {key: self._encode(ids) for key, ids in tokens.items()}}

    def _tokens(self, text: str) -> list[torch.Tensor]:
        return [
            tokenizer(
                text, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
            ).input_ids.to(self.device)
            for tokenizer in (self.pipe.tokenizer, self.pipe.tokenizer_2)
        ]

    def _encode(self, ids: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """SDXL's conditioning: both encoders' penultimate hidden states side by side, and the second's
        pooled output (what the pipeline's encode_prompt makes, bit for bit)."""
        hidden, pooled = [], None
        for encoder, tokens in zip((self.pipe.text_encoder, self.pipe.text_encoder_2), ids):
            out = encoder(tokens, output_hidden_states=True, return_dict=False)
            pooled = out[0]
            hidden.append(out[-1][-2])
        return torch.cat(hidden, dim=-1), pooled

    def _resume(self, optimizer) -> int:
        """The step to start from: 0, or that of the state an earlier try saved (its LoRA, optimizer and
        random state restored, the random state last)."""
        if self.job.state is None:
            return 0
        saved = load_file(str(self.job.state / LORA_FILE))
        for name in self.parts:
            prefix = f"{name}."
            own = {key.removeprefix(prefix): value for key, value in saved.items() if key.startswith(prefix)}
            set_peft_model_state_dict(getattr(self.pipe, name), own, adapter_name=ADAPTER)
        state = torch.load(self.job.state / STATE_FILE, weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        if self.cuda and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"])
        logger.info("Training resumed at step %d of %d", state["step"], self.params.steps)
        return int(state["step"])

    # training ------------------------------------------------------------------------------------

    def _step(self, step, latents, prior, prompts, scheduler, groups, optimizer) -> float:
        params, unet = self.params, self.pipe.unet
        index = step % len(latents)
        batch, keys = latents[index : index + 1], ["instance"]
        if prior is not None:
            batch, keys = torch.cat([batch, prior[step % len(prior) : step % len(prior) + 1]]), ["instance", "class"]
        noise = torch.randn_like(batch)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(batch),), device=batch.device)
        noisy = scheduler.add_noise(batch, noise, timesteps)
        if "embeddings" in prompts:
            encoded = [prompts["embeddings"][key] for key in keys]
        else:
            encoded = [self._encode(prompts["tokens"][key]) for key in keys]
        embeddings = torch.cat([pair[0] for pair in encoded]).to(self.dtype)
        pooled = torch.cat([pair[1] for pair in encoded]).to(self.dtype)
        time_ids = torch.tensor([[self.size, self.size, 0, 0, self.size, self.size]] * len(batch), device=batch.device)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.cuda else nullcontext()
        with autocast:
            predicted = unet(
                noisy,
                timesteps,
                embeddings,
                added_cond_kwargs={"time_ids": time_ids.to(self.dtype), "text_embeds": pooled},
                return_dict=False,
            )[0]
        target = (
            noise if scheduler.config.prediction_type == "epsilon" else scheduler.get_velocity(batch, noise, timesteps)
        )
        errors = F.mse_loss(predicted.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
        if params.min_snr_gamma:
            snr = compute_snr(scheduler, timesteps)
            errors = errors * torch.clamp(snr, max=params.min_snr_gamma) / snr
        loss = errors[0] + (params.prior_loss_weight * errors[1] if len(errors) > 1 else 0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for group in groups for p in group["params"]], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            raise GenerationError("Failed: the training diverged (its loss is not a number); try a lower learning rate")
        return float(loss)

    def sample(self) -> Image.Image:
        """The instance prompt through the LoRA so far, at a fixed seed (the training's own random state
        is left as it was)."""
        params = self.params
        with torch.random.fork_rng(devices=[]):
            return self.pipe(
                prompt=params.instance_prompt,
                negative_prompt=params.negative_prompt or None,
                num_inference_steps=params.sample_steps,
                height=self.size,
                width=self.size,
                generator=torch.Generator("cpu").manual_seed(params.seed),
            ).images[0]

    # saving --------------------------------------------------------------------------------------

    def _lora_state(self) -> dict:
        """Every trained LoRA matrix, as peft names it, under its model's prefix."""
        state = {}
        for name in self.parts:
            for key, value in get_peft_model_state_dict(getattr(self.pipe, name), adapter_name=ADAPTER).items():
                state[f"{name}.{key}"] = value.detach().float().contiguous().cpu()
        return state

    def _save_state(self, step: int, optimizer):
        with tempfile.TemporaryDirectory(prefix="training-state-") as folder:
            save_file(self._lora_state(), str(Path(folder) / LORA_FILE))
            state = {"optimizer": optimizer.state_dict(), "rng": torch.get_rng_state(), "step": step}
            if self.cuda:
                state["cuda_rng"] = torch.cuda.get_rng_state()
            torch.save(state, Path(folder) / STATE_FILE)
            self.job.save_state(Path(folder))

    def _export(self) -> Path:
        """The LoRA in the kohya layout (lora_unet_..., lora_te1_..., lora_te2_... with their alphas), fp16."""
        kohya = convert_state_dict_to_kohya(self._lora_state())
        folder = Path(tempfile.mkdtemp(prefix="trained-lora-"))
        metadata = {
            "ss_network_module": "networks.lora",
            "ss_network_dim": str(self.params.rank),
            "ss_network_alpha": str(self.params.rank),
            "ss_base_model_version": "sdxl_base_v1-0",
            "ss_resolution": f"({self.size}, {self.size})",
            "ss_max_train_steps": str(self.params.steps),
            "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
            "modelspec.title": self.params.instance_prompt[:200],
        }
        tensors = {key: value.to(torch.float16).contiguous() for key, value in kohya.items()}
        save_file(tensors, str(folder / OUTPUT_FILE), metadata=metadata)
        return folder / OUTPUT_FILE


def _array(photo: Image.Image):
    """A photo's pixels in [-1, 1], height x width x 3."""
    return np.asarray(photo.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
