"""Plan limits applied to a request's parameters (clamped, like every other out-of-range value)."""


def clamp_to_plan(params: dict, plan) -> dict:
    limit = plan.max_resolution - plan.max_resolution % 8
    for side in ("width", "height"):
        if params.get(side):
            params[side] = min(params[side], limit)
    if "samples" in params:
        params["samples"] = min(params["samples"], plan.max_samples)
    return params
