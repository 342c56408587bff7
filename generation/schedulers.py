"""Scheduler names clients send (diffusers class names and A1111 labels) and how to build them.

The name table is plain Python so the web tier can validate without importing diffusers.
"""

import re

DEFAULT_SCHEDULER = "UniPCMultistepScheduler"
# schedulers that evaluate the model twice per step: they run about 2 * steps - 1 model steps
SECOND_ORDER = {
    "HeunDiscreteScheduler",
    "KDPM2DiscreteScheduler",
    "KDPM2AncestralDiscreteScheduler",
    "DPMSolverSDEScheduler",
}

DIFFUSERS_SCHEDULERS = [
    "DDPMScheduler",
    "DDIMScheduler",
    "PNDMScheduler",
    "LMSDiscreteScheduler",
    "EulerDiscreteScheduler",
    "EulerAncestralDiscreteScheduler",
    "DPMSolverMultistepScheduler",
    "HeunDiscreteScheduler",
    "KDPM2DiscreteScheduler",
    "DPMSolverSinglestepScheduler",
    "KDPM2AncestralDiscreteScheduler",
    "UniPCMultistepScheduler",
    "DEISMultistepScheduler",
    "LCMScheduler",
]

# A1111 label -> (diffusers class, options); see diffusers' "schedulers" documentation table.
A1111_SCHEDULERS = {
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "DPM++ 2M SDE Karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True},
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
