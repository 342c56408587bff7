"""A library model's own sampling: the scheduler, spacing, steps, guidance and eta a few-step model
(SDXL-Lightning, LCM-LoRA, Hyper-SD, SDXL-Turbo) needs, and the ranges it works within.

A request that names the model gets these unless it asks otherwise within the ranges; out of range it is
clamped and told so in `meta.not_applied`. Plain Python, like the rest of generation/kinds/.
"""

from dataclasses import asdict, dataclass, fields

from generation.kinds.schedulers import ACCEPTED_OPTIONS, TIMESTEP_SPACINGS

# the sampling fields a request may set, as DiffusionParams names them
STEPS, GUIDANCE, SCHEDULER, ETA = "steps", "guidance_scale", "scheduler", "eta"
GUIDANCE_LIMITS = (0.0, 20.0)  # what any request may ask (the serializers' range)


@dataclass(frozen=True)
class Sampling:
    scheduler: str = ""  # a diffusers scheduler class ("": the request's)
    timestep_spacing: str = ""  # "trailing", "leading" or "linspace" ("": the scheduler's own)
    steps: int | None = None  # the default
    max_steps: int | None = None
    guidance: float | None = None  # the default (<= 1: no negative-prompt pass)
    min_guidance: float | None = None
    max_guidance: float | None = None
    eta: float | None = None  # TCD's gamma / DDIM's eta

    def __post_init__(self):
        for name in ("steps", "max_steps", "guidance", "min_guidance", "max_guidance", "eta"):
            value = getattr(self, name)
            number = int if name.endswith("steps") else (int, float)
            if value is not None and (isinstance(value, bool) or not isinstance(value, number)):
                raise ValueError(f"The {name.replace('_', ' ')} must be a number.")
        if self.scheduler and self.scheduler not in ACCEPTED_OPTIONS:
            raise ValueError(f"Unknown scheduler {self.scheduler!r}; one of {', '.join(ACCEPTED_OPTIONS)}.")
        if self.timestep_spacing and self.timestep_spacing not in TIMESTEP_SPACINGS:
            raise ValueError(f"The timestep spacing is one of {', '.join(TIMESTEP_SPACINGS)}.")
        if self.steps is not None and self.max_steps is not None and self.steps > self.max_steps:
            raise ValueError("The default steps are more than the most steps.")
        low, high = self.guidance_range()
        if low > high:
            raise ValueError("The lowest guidance is above the highest.")
        if self.guidance is not None and not low <= self.guidance <= high:
            raise ValueError("The default guidance is outside the guidance range.")

    @classmethod
    def from_dict(cls, data: dict | None) -> "Sampling":
        known = {field.name for field in fields(cls)}
        return cls(**{name: value for name, value in (data or {}).items() if name in known and value not in ("", None)})

    def to_dict(self) -> dict:
        return {name: value for name, value in asdict(self).items() if value not in ("", None)}

    def guidance_range(self) -> tuple[float, float]:
        """The guidance requests may ask of the model: its range, within what any request may ask."""
        low, high = GUIDANCE_LIMITS
        return (
            low if self.min_guidance is None else self.min_guidance,
            high if self.max_guidance is None else self.max_guidance,
        )

    def __bool__(self) -> bool:
        return bool(self.to_dict())

    def describe(self) -> str:
        """One line for the admin and the playground: "EulerDiscreteScheduler, trailing, 4 steps (at most
        8), guidance 0 (0-1)"."""
        parts = [self.scheduler or "", self.timestep_spacing]
        if self.steps is not None:
            parts.append(f"{self.steps} steps" + (f" (at most {self.max_steps})" if self.max_steps else ""))
        if self.guidance is not None:
            ranged = self.min_guidance is not None or self.max_guidance is not None
            parts.append(
                f"guidance {self.guidance:g}" + (" ({:g}-{:g})".format(*self.guidance_range()) if ranged else "")
            )
        if self.eta is not None:
            parts.append(f"eta {self.eta:g}")
        return ", ".join(part for part in parts if part)


# The families' published settings (their model cards and diffusers' docs).
PRESETS = {
    # ByteDance's SDXL-Lightning (UNet or LoRA, 2/4/8 steps): Euler, trailing timesteps, no CFG
    "lightning": Sampling(
        scheduler="EulerDiscreteScheduler",
        timestep_spacing="trailing",
        steps=4,
        max_steps=8,
        guidance=0.0,
        min_guidance=0.0,
        max_guidance=1.0,
    ),
    # latent-consistency LoRA on any SDXL: LCMScheduler, 4-8 steps, guidance 1-2
    "lcm": Sampling(scheduler="LCMScheduler", steps=4, max_steps=8, guidance=1.0, min_guidance=0.0, max_guidance=2.0),
    # ByteDance's Hyper-SD LoRAs (1-8 steps): TCD with eta (gamma), no CFG
    "hyper-sd": Sampling(
        scheduler="TCDScheduler",
        timestep_spacing="trailing",
        steps=4,
        max_steps=8,
        guidance=0.0,
        min_guidance=0.0,
        max_guidance=1.0,
        eta=0.3,
    ),
    # Stability's SDXL-Turbo (1-4 steps at 512x512, non-commercial licence): no CFG, trailing timesteps
    "turbo": Sampling(
        scheduler="EulerAncestralDiscreteScheduler",
        timestep_spacing="trailing",
        steps=1,
        max_steps=4,
        guidance=0.0,
        min_guidance=0.0,
        max_guidance=1.0,
    ),
}


def with_preset(preset: str | None, overrides: dict) -> dict:
    """A model's sampling: a family's preset (none: nothing) with `overrides` on top, checked.
    ValueError names what is wrong."""
    chosen = PRESETS[preset].to_dict() if preset else {}
    return Sampling.from_dict(
        {**chosen, **{name: value for name, value in overrides.items() if value is not None}}
    ).to_dict()
