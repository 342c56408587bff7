"""Sampling as clients name it — diffusers scheduler classes, AUTOMATIC1111's samplers and schedule types
(their 1.10 / Forge names, aliases and the older combined "DPM++ 2M Karras" labels) — resolved to a
diffusers class and its options, saying which part of a request could only be approximated.

Plain Python, so the web tier validates without importing diffusers; tests/test_schedulers.py checks
the option tables against diffusers' own signatures.
"""

import math
import re
from dataclasses import dataclass, field

DEFAULT_SCHEDULER = "UniPCMultistepScheduler"
# schedulers that evaluate the model twice per step: they run about 2 * steps - 1 model steps
SECOND_ORDER = {
    "HeunDiscreteScheduler",
    "KDPM2DiscreteScheduler",
    "KDPM2AncestralDiscreteScheduler",
    "DPMSolverSDEScheduler",
}

SIGMAS = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas")  # at most one of them is on
SPACING = ("timestep_spacing",)
SOLVER = ("algorithm_type", "solver_order", "solver_type")
AYS = "timesteps_preset"  # custom timesteps (align your steps), for the classes that take them

# each class with the options its config takes (diffusers 0.42)
ACCEPTED_OPTIONS = {
    "DDPMScheduler": {*SPACING, AYS},
    "DDIMScheduler": {*SPACING},
    "PNDMScheduler": {*SPACING},
    "LMSDiscreteScheduler": {*SIGMAS, *SPACING},
    "EulerDiscreteScheduler": {*SIGMAS, *SPACING, AYS},
    "EulerAncestralDiscreteScheduler": {*SPACING},
    "DPMSolverMultistepScheduler": {*SIGMAS, *SPACING, *SOLVER, AYS},
    "HeunDiscreteScheduler": {*SIGMAS, *SPACING, AYS},
    "KDPM2DiscreteScheduler": {*SIGMAS, *SPACING},
    "DPMSolverSinglestepScheduler": {*SIGMAS, *SOLVER, AYS},
    "KDPM2AncestralDiscreteScheduler": {*SIGMAS, *SPACING},
    "UniPCMultistepScheduler": {*SIGMAS, *SPACING, "solver_order"},
    "DEISMultistepScheduler": {*SIGMAS, *SPACING, "solver_order"},
    "LCMScheduler": {*SPACING, AYS},
    "TCDScheduler": {*SPACING, AYS},
}
DIFFUSERS_SCHEDULERS = list(ACCEPTED_OPTIONS)

# "dpmsolver+++" is how the hosted API spelled diffusers' "sde-dpmsolver++".
ALGORITHM_TYPES = {
    "dpmsolver+++": "sde-dpmsolver++",
    "sde-dpmsolver++": "sde-dpmsolver++",
    "dpmsolver++": "dpmsolver++",
    "dpmsolver": "dpmsolver",
    "sde-dpmsolver": "sde-dpmsolver",
}
TIMESTEP_SPACINGS = ("leading", "linspace", "trailing")
SOLVER_TYPES = ("midpoint", "heun")
TIMESTEP_PRESETS = ("align_your_steps",)
# SDXL's ten "Align Your Steps" timesteps (Sabour et al. 2024; diffusers' AysSchedules)
AYS_SDXL = (999, 845, 730, 587, 443, 310, 193, 116, 53, 13)


@dataclass(frozen=True)
class Sampler:
    """An A1111 sampler: its names, what /sdapi/v1/samplers lists, and the diffusers class that runs it
    (`nearest`: why that class only approximates it)."""

    name: str
    aliases: tuple
    listed_options: dict  # A1111's own (its default schedule type among them), as it lists them
    scheduler: str
    options: dict = field(default_factory=dict)
    nearest: str = ""

    @property
    def default_schedule(self) -> str:
        return self.listed_options.get("scheduler", "automatic")


def _sampler(name, aliases, listed, scheduler, options=None, nearest=""):
    return Sampler(name, tuple(aliases), listed, scheduler, options or {}, nearest)


KARRAS, EXPONENTIAL = {"scheduler": "karras"}, {"scheduler": "exponential"}
SDE = {"algorithm_type": "sde-dpmsolver++"}
# A1111 1.10's samplers in its order, then the ones Forge adds
SAMPLERS = [
    _sampler("DPM++ 2M", ["k_dpmpp_2m"], KARRAS, "DPMSolverMultistepScheduler"),
    _sampler(
        "DPM++ SDE",
        ["k_dpmpp_sde"],
        {**KARRAS, "second_order": "True", "brownian_noise": "True"},
        "DPMSolverSinglestepScheduler",
        nearest="the SDE variant's Brownian noise is not reproducible per seed here; DPM-Solver++ singlestep ran",
    ),
    _sampler(
        "DPM++ 2M SDE",
        ["k_dpmpp_2m_sde"],
        {**EXPONENTIAL, "brownian_noise": "True"},
        "DPMSolverMultistepScheduler",
        SDE,
    ),
    _sampler(
        "DPM++ 2M SDE Heun",
        ["k_dpmpp_2m_sde_heun"],
        {**EXPONENTIAL, "brownian_noise": "True", "solver_type": "heun"},
        "DPMSolverMultistepScheduler",
        {**SDE, "solver_type": "heun"},
    ),
    _sampler(
        "DPM++ 2S a",
        ["k_dpmpp_2s_a"],
        {**KARRAS, "uses_ensd": "True", "second_order": "True"},
        "DPMSolverSinglestepScheduler",
        nearest="diffusers has no ancestral DPM++ 2S; DPM-Solver++ singlestep (order 2) ran",
    ),
    _sampler(
        "DPM++ 3M SDE",
        ["k_dpmpp_3m_sde"],
        {**EXPONENTIAL, "discard_next_to_last_sigma": "True", "brownian_noise": "True"},
        "DPMSolverMultistepScheduler",
        {**SDE, "solver_order": 3},
    ),
    _sampler("Euler a", ["k_euler_a", "k_euler_ancestral"], {"uses_ensd": "True"}, "EulerAncestralDiscreteScheduler"),
    _sampler("Euler", ["k_euler"], {}, "EulerDiscreteScheduler"),
    _sampler("LMS", ["k_lms"], {}, "LMSDiscreteScheduler"),
    _sampler("Heun", ["k_heun"], {"second_order": "True"}, "HeunDiscreteScheduler"),
    _sampler(
        "DPM2",
        ["k_dpm_2"],
        {**KARRAS, "discard_next_to_last_sigma": "True", "second_order": "True"},
        "KDPM2DiscreteScheduler",
    ),
    _sampler(
        "DPM2 a",
        ["k_dpm_2_a"],
        {**KARRAS, "discard_next_to_last_sigma": "True", "uses_ensd": "True", "second_order": "True"},
        "KDPM2AncestralDiscreteScheduler",
    ),
    _sampler(
        "DPM fast",
        ["k_dpm_fast"],
        {"uses_ensd": "True"},
        "DPMSolverSinglestepScheduler",
        nearest="diffusers has no DPM-Solver 'fast'; DPM-Solver++ singlestep ran",
    ),
    _sampler(
        "DPM adaptive",
        ["k_dpm_ad"],
        {"uses_ensd": "True"},
        "DPMSolverSinglestepScheduler",
        nearest="diffusers has no adaptive-step DPM-Solver; DPM-Solver++ singlestep ran the asked steps",
    ),
    _sampler(
        "Restart",
        ["restart"],
        {**KARRAS, "second_order": "True"},
        "HeunDiscreteScheduler",
        nearest="diffusers has no Restart sampler; Heun (its inner solver) ran without restarts",
    ),
    _sampler("DDIM", ["ddim"], {}, "DDIMScheduler"),
    _sampler(
        "DDIM CFG++",
        ["ddim_cfgpp"],
        {},
        "DDIMScheduler",
        nearest="CFG++ guidance is not implemented here; plain DDIM ran",
    ),
    _sampler("PLMS", ["plms"], {}, "PNDMScheduler"),
    _sampler("UniPC", ["unipc"], {}, "UniPCMultistepScheduler"),
    _sampler("LCM", ["k_lcm"], {}, "LCMScheduler"),
    # Forge's additions
    _sampler(
        "Euler CFG++", ["euler_cfg_pp"], {}, "EulerDiscreteScheduler", nearest="CFG++ is not implemented; Euler ran"
    ),
    _sampler(
        "Euler a CFG++",
        ["euler_ancestral_cfg_pp"],
        {},
        "EulerAncestralDiscreteScheduler",
        nearest="CFG++ is not implemented; Euler a ran",
    ),
    _sampler(
        "DPM++ 2M CFG++",
        ["dpmpp_2m_cfg_pp"],
        KARRAS,
        "DPMSolverMultistepScheduler",
        nearest="CFG++ is not implemented; DPM++ 2M ran",
    ),
    _sampler("DEIS", ["deis"], {}, "DEISMultistepScheduler"),
    _sampler("DDPM", ["ddpm"], {}, "DDPMScheduler"),
    _sampler(
        "IPNDM", ["ipndm"], {}, "PNDMScheduler", nearest="diffusers' IPNDM is not offered; PNDM (PLMS) ran instead"
    ),
    _sampler("TCD", ["tcd"], {}, "TCDScheduler"),
]


@dataclass(frozen=True)
class Schedule:
    """An A1111 schedule type (`/sdapi/v1/schedulers`) and the diffusers options that give it."""

    name: str
    label: str
    options: dict
    aliases: tuple | None = None
    default_rho: float = -1.0
    need_inner_model: bool = False
    nearest: str = ""


AUTOMATIC = "automatic"
SCHEDULES = [
    Schedule(AUTOMATIC, "Automatic", {}),
    Schedule("uniform", "Uniform", {"timestep_spacing": "linspace"}, need_inner_model=True),
    Schedule("karras", "Karras", {"use_karras_sigmas": True}, default_rho=7.0),
    Schedule("exponential", "Exponential", {"use_exponential_sigmas": True}),
    # with its default rho of 1, the polyexponential schedule is the exponential one
    Schedule("polyexponential", "Polyexponential", {"use_exponential_sigmas": True}, default_rho=1.0),
    Schedule("sgm_uniform", "SGM Uniform", {"timestep_spacing": "trailing"}, ("SGMUniform",), need_inner_model=True),
    Schedule(
        "kl_optimal",
        "KL Optimal",
        {"use_karras_sigmas": True},
        nearest="diffusers has no KL-optimal schedule; Karras sigmas (also dense at low noise) were used",
    ),
    Schedule("align_your_steps", "Align Your Steps", {AYS: "align_your_steps"}),
    Schedule("simple", "Simple", {"timestep_spacing": "trailing"}, need_inner_model=True),
    Schedule("normal", "Normal", {"timestep_spacing": "linspace"}, need_inner_model=True),
    Schedule("ddim", "DDIM", {"timestep_spacing": "leading"}, need_inner_model=True),
    Schedule("beta", "Beta", {"use_beta_sigmas": True}, need_inner_model=True),
]


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


SAMPLER_NAMES = {_key(name): sampler for sampler in SAMPLERS for name in (sampler.name, *sampler.aliases)}
SCHEDULE_NAMES = {_key(name): s for s in SCHEDULES for name in (s.name, s.label, *(s.aliases or ()))}
CLASS_NAMES = {_key(name): name for name in DIFFUSERS_SCHEDULERS}
# what a combined label may end with, longest first ("SGM Uniform" before "Uniform")
SCHEDULE_SUFFIXES = sorted(
    ((option, s) for s in SCHEDULES[1:] for option in (s.label, *(s.aliases or ()))), key=lambda pair: -len(pair[0])
)


@dataclass
class Sampling:
    """A resolved choice: the diffusers class, its options, and the request fields it only approximates
    ({"field", "reason"}, for meta.not_applied)."""

    scheduler: str
    options: dict = field(default_factory=dict)
    not_applied: list = field(default_factory=list)

    def apply(self, options: dict, field_name: str | None = None, label: str = ""):
        """Options on top of these, one sigma schedule at a time. An option the class has no use for is
        named under `field_name` (None: under the option's own name, a request field of that name)."""
        accepted = ACCEPTED_OPTIONS.get(self.scheduler, set())
        for name, value in options.items():
            if name not in accepted:
                what = label or name
                self.note(field_name or name, f"{what} is not available with {self.scheduler}; it was not applied")
                continue
            if name in SIGMAS and value:
                for other in SIGMAS:
                    self.options.pop(other, None)
            self.options[name] = value

    def note(self, field_name: str, reason: str):
        self.not_applied.append({"field": field_name, "reason": reason})


def _split_schedule(name: str) -> tuple[str, Schedule | None]:
    """A combined label's sampler and schedule ("DPM++ 2M Karras" -> "DPM++ 2M", Karras)."""
    for option, schedule in SCHEDULE_SUFFIXES:
        if name.lower().endswith(" " + option.lower()):
            return name[: -len(option) - 1].strip(), schedule
    return name, None


def resolve(name: str | None, explicit: dict | None = None, field_name: str = "scheduler") -> Sampling | None:
    """The hosted API's `scheduler`: a diffusers class, an A1111 sampler (or alias) as diffusers' docs map
    it, or a combined "<sampler> <schedule type>" label, with the request's option fields on top
    (`explicit`: option name -> value, for those it set). None when the name is unknown."""
    text = str(name or DEFAULT_SCHEDULER).strip()
    if _key(text) in CLASS_NAMES:
        sampling = Sampling(CLASS_NAMES[_key(text)])
    else:
        sampler_name, schedule = _split_schedule(text)
        sampler = SAMPLER_NAMES.get(_key(sampler_name))
        if sampler is None:
            return None
        sampling = _from_sampler(sampler, schedule, field_name, field_name)
    sampling.apply({key: value for key, value in (explicit or {}).items() if value is not None})
    return sampling


def _from_sampler(sampler: Sampler, schedule: Schedule | None, sampler_field: str, schedule_field: str) -> Sampling:
    sampling = Sampling(sampler.scheduler, dict(sampler.options))
    if sampler.nearest:
        sampling.note(sampler_field, f"{sampler.name}: {sampler.nearest}")
    if schedule is not None:
        if schedule.nearest:
            sampling.note(schedule_field, f"{schedule.label}: {schedule.nearest}")
        sampling.apply(schedule.options, schedule_field, f"The {schedule.label} schedule")
    return sampling


def a1111(sampler_name: str | None, schedule_name: str | None, default_sampler: str) -> Sampling | None:
    """A1111's `sampler_name` + `scheduler` as A1111 1.10 reads them: any sampler with any schedule type,
    the older combined names, "Automatic" meaning the sampler's own default (Karras for DPM++ 2M). None
    when either name is unknown."""
    schedule = SCHEDULE_NAMES.get(_key(schedule_name or AUTOMATIC))
    if schedule is None:
        return None
    name, combined = _split_schedule(str(sampler_name or default_sampler).strip())
    sampler = SAMPLER_NAMES.get(_key(name))
    if sampler is None:
        return None
    if schedule.name == AUTOMATIC:
        schedule = combined or SCHEDULE_NAMES[_key(sampler.default_schedule)]
    return _from_sampler(sampler, schedule, "sampler_name", "scheduler")


def class_labels() -> list[tuple[str, str]]:
    """Each diffusers class with the A1111 name people know it by ("Euler a (EulerAncestralDiscrete...)"),
    for the playground's one list."""
    names = {}
    for sampler in SAMPLERS:
        if not sampler.options and not sampler.nearest:
            names.setdefault(sampler.scheduler, sampler.name)
    return [(name, f"{names[name]} ({name})" if name in names else name) for name in DIFFUSERS_SCHEDULERS]


def ays_timesteps(steps: int) -> list[int]:
    """SDXL's Align-Your-Steps timesteps for `steps` steps: the published ten, interpolated log-linearly
    to another count as A1111 does, strictly decreasing."""
    if steps in (1, len(AYS_SDXL)):
        return list(AYS_SDXL[:steps])
    logs = [math.log(t) for t in reversed(AYS_SDXL)]
    points = []
    for i in range(steps):
        position = i * (len(logs) - 1) / max(1, steps - 1)
        low = min(int(position), len(logs) - 2)
        value = math.exp(logs[low] + (logs[low + 1] - logs[low]) * (position - low))
        points.append(round(value))
    timesteps = []
    for value in reversed(points):
        timesteps.append(min(value, timesteps[-1] - 1) if timesteps else value)
    return timesteps
