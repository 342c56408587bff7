"""Scheduler names clients send (diffusers class names and A1111 labels) and how to build them.

The name table is plain Python so the web tier can validate without importing diffusers.
"""

import inspect
import re

DEFAULT_SCHEDULER = "UniPCMultistepScheduler"

DIFFUSERS_SCHEDULERS = [
    "DDPMScheduler", "DDIMScheduler", "PNDMScheduler", "LMSDiscreteScheduler", "EulerDiscreteScheduler",
    "EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler", "HeunDiscreteScheduler",
    "KDPM2DiscreteScheduler", "DPMSolverSinglestepScheduler", "KDPM2AncestralDiscreteScheduler",
    "UniPCMultistepScheduler", "DEISMultistepScheduler", "LCMScheduler",
]

# A1111 label -> (diffusers class, options); see diffusers' "schedulers" documentation table.
A1111_SCHEDULERS = {
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "DPM++ 2M SDE Karras": (
        "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True},
    ),
    "DPM++ SDE": ("DPMSolverSinglestepScheduler", {}),
    "DPM++ SDE Karras": ("DPMSolverSinglestepScheduler", {"use_karras_sigmas": True}),
    "DPM++ 2S a": ("DPMSolverSinglestepScheduler", {}),
    "DPM2": ("KDPM2DiscreteScheduler", {}),
    "DPM2 Karras": ("KDPM2DiscreteScheduler", {"use_karras_sigmas": True}),
    "DPM2 a": ("KDPM2AncestralDiscreteScheduler", {}),
    "DPM2 a Karras": ("KDPM2AncestralDiscreteScheduler", {"use_karras_sigmas": True}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler Karras": ("EulerDiscreteScheduler", {"use_karras_sigmas": True}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "Heun Karras": ("HeunDiscreteScheduler", {"use_karras_sigmas": True}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "LMS Karras": ("LMSDiscreteScheduler", {"use_karras_sigmas": True}),
    "DDIM": ("DDIMScheduler", {}),
    "DDPM": ("DDPMScheduler", {}),
    "PLMS": ("PNDMScheduler", {}),
    "PNDM": ("PNDMScheduler", {}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "DEIS": ("DEISMultistepScheduler", {}),
    "LCM": ("LCMScheduler", {}),
}

# Options every job of a class gets (PNDM's Runge-Kutta warm-up fails below 4 steps; SD configs skip it).
CLASS_DEFAULTS = {"PNDMScheduler": {"skip_prk_steps": True}}

# "dpmsolver+++" is how the hosted API spelled diffusers' "sde-dpmsolver++".
ALGORITHM_TYPES = {
    "dpmsolver+++": "sde-dpmsolver++",
    "sde-dpmsolver++": "sde-dpmsolver++",
    "dpmsolver++": "dpmsolver++",
    "dpmsolver": "dpmsolver",
    "sde-dpmsolver": "sde-dpmsolver",
}


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name).lower()


_LOOKUP = {_key(name): (name, {}) for name in DIFFUSERS_SCHEDULERS}
_LOOKUP.update({_key(label): spec for label, spec in A1111_SCHEDULERS.items()})


def resolve(name: str | None, use_karras_sigmas: bool | None = None, algorithm_type: str | None = None):
    """(class name, options) for a client's scheduler name, or None when the name is unknown.

    Explicit `use_karras_sigmas` / `algorithm_type` fields override what an A1111 label implies.
    """
    spec = _LOOKUP.get(_key(name or DEFAULT_SCHEDULER))
    if spec is None:
        return None
    class_name, options = spec[0], dict(spec[1])
    if use_karras_sigmas is not None:
        options["use_karras_sigmas"] = use_karras_sigmas
    algorithm = ALGORITHM_TYPES.get((algorithm_type or "").strip().lower())
    if algorithm:
        options["algorithm_type"] = algorithm
    return class_name, options


def build(class_name: str, options: dict, base_config):
    """A fresh scheduler instance from the model's own scheduler config (never mutates the shared one).

    Options a scheduler class does not accept are dropped, so "karras" on DDIM is a no-op, not a crash.
    """
    import diffusers

    cls = getattr(diffusers, class_name)
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {**CLASS_DEFAULTS.get(class_name, {})}
    kwargs.update((key, value) for key, value in options.items() if key in accepted)
    if class_name == "DPMSolverSinglestepScheduler" and kwargs.get("algorithm_type", "").startswith("sde-"):
        kwargs["algorithm_type"] = "dpmsolver++"  # singlestep has no SDE variant
    return cls.from_config(base_config, **kwargs)
