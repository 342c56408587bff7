"""How long jobs take on this deployment's workers, and how long a job will wait.

- **Timings**: after each job a worker updates, for the job's shape (kind, size, images), a moving
  average of the fixed cost (text encoding, VAE decode, saving) and of the cost of one denoising step,
  measured between the pipeline's step callbacks. A job's prediction is fixed + step × the steps the
  scheduler will really run (second-order schedulers run about twice as many, img2img only
  `steps × strength`); an unseen shape is scaled from the closest seen one by pixels × images.
- **Backlog**: Redis keeps, per queue, the number of queued jobs and their predicted seconds. It moves
  with each enqueue and start (in the same round trip as the RQ call where it can) and is recounted
  from the database by the workers' periodic maintenance, so it cannot drift for long.
- **ETA** of a queued job: the predicted work ahead of it (queues served first, then its own queue up
  to its position) plus what running jobs have left, shared among the live workers, plus its own time.
"""

import json
import math
import time

from django.conf import settings
from django.db.models import Count, Sum

from generation import heartbeat, queueing
from generation.models import Job

TIMINGS_KEY = "sdxl:timings"
BACKLOG_KEY = "sdxl:backlog"
DEFAULT_SECONDS = 10.0  # before any job of any shape has run
SMOOTHING = 0.3  # weight of the newest measurement in the moving averages
CACHE_SECONDS = 5.0
SECOND_ORDER = {"HeunDiscreteScheduler", "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler",
                "DPMSolverSDEScheduler"}

_cache = {"at": -math.inf, "timings": {}}


def real_steps(kind: str, params: dict) -> int:
    """The denoising steps the worker will run for these parameters."""
    if kind == Job.Kind.SUPER_RESOLUTION:
        return 0
    steps = params["steps"]
    if kind in (Job.Kind.IMG2IMG, Job.Kind.INPAINT):
        steps = max(1, int(steps * min(1.0, max(params.get("strength", 1.0), 1 / steps))))
    return 2 * steps - 1 if params.get("scheduler") in SECOND_ORDER else steps


def _work(kind: str, params: dict) -> float:
    """Relative amount of work per step (pixels × images, × scale² for upscaling)."""
    pixels = params.get("width", 512) * params.get("height", 512)
    return pixels * (params.get("scale", 1) ** 2 if kind == Job.Kind.SUPER_RESOLUTION else params.get("samples", 1))


def shape(kind: str, params: dict) -> str:
    size = f"{params.get('width', 0)}x{params.get('height', 0)}"
    extra = params.get("scale", 1) if kind == Job.Kind.SUPER_RESOLUTION else params.get("samples", 1)
    return f"{kind}:{size}:{extra}"


def _timings() -> dict:
    """All learned timings, cached in this process for a few seconds."""
    if time.monotonic() - _cache["at"] > CACHE_SECONDS:
        stored = queueing.connection().hgetall(TIMINGS_KEY)
        _cache["timings"] = {key.decode(): json.loads(value) for key, value in stored.items()}
        _cache["at"] = time.monotonic()
    return _cache["timings"]


def predict(kind: str, params: dict) -> float:
    """Predicted seconds on a worker for a job with these parameters."""
    timings = _timings()
    steps = real_steps(kind, params)
    known = timings.get(shape(kind, params))
    if known:
        return known["fixed"] + known["step"] * steps
    same_kind = [t for key, t in timings.items() if key.startswith(f"{kind}:")] or list(timings.values())
    if not same_kind:
        return DEFAULT_SECONDS
    work = _work(kind, params)
    closest = min(same_kind, key=lambda t: abs(math.log(work / t["work"])))
    scale = work / closest["work"]
    return (closest["fixed"] + closest["step"] * steps) * scale


def learn(pipe, kind: str, params: dict, seconds: float, step_seconds: float | None):
    """Fold a finished job's measured time into its shape's moving averages, on the caller's Redis
    pipeline. Runs on the worker, which starts from what it last read or learned (workers sharing a
    shape blend their measurements through Redis)."""
    key = shape(kind, params)
    old = _timings().get(key)
    steps = real_steps(kind, params)
    step = step_seconds if step_seconds is not None else (old["step"] if old else 0.0)
    fixed = max(0.0, seconds - step * steps)
    if old:
        fixed = old["fixed"] + SMOOTHING * (fixed - old["fixed"])
        step = old["step"] + SMOOTHING * (step - old["step"])
    record = {"fixed": fixed, "step": step, "work": _work(kind, params), "n": (old["n"] + 1) if old else 1}
    _cache["timings"][key] = record
    pipe.hset(TIMINGS_KEY, key, json.dumps(record))


def add_to_backlog(pipe, queue_name: str, seconds: float, count: int = 1):
    pipe.hincrby(BACKLOG_KEY, f"{queue_name}:count", count)
    pipe.hincrbyfloat(BACKLOG_KEY, f"{queue_name}:seconds", seconds * count)


def remove_from_backlog(job: Job):
    """A queued job left its queue (started, canceled, failed)."""
    with queueing.connection().pipeline(transaction=False) as pipe:
        add_to_backlog(pipe, job.queue_name, job.predicted_seconds, count=-1)
        pipe.execute()


def backlog() -> dict[str, tuple[int, float]]:
    """Per queue: (queued jobs, their predicted seconds)."""
    result: dict[str, list] = {}
    for field, value in queueing.connection().hgetall(BACKLOG_KEY).items():
        name, _, what = field.decode().rpartition(":")
        entry = result.setdefault(name, [0, 0.0])
        if what == "count":
            entry[0] = max(0, int(value))
        else:
            entry[1] = max(0.0, float(value))
    return {name: (count, seconds if count else 0.0) for name, (count, seconds) in result.items()}


def recount():
    """Reset the backlog from the database, the source of truth (maintenance does this periodically)."""
    rows = (Job.objects.filter(status=Job.Status.QUEUED).values("queue_name")
            .annotate(count=Count("id"), seconds=Sum("predicted_seconds")))
    mapping = {}
    for row in rows:
        mapping[f"{row['queue_name']}:count"] = row["count"]
        mapping[f"{row['queue_name']}:seconds"] = row["seconds"] or 0.0
    with queueing.connection().pipeline() as pipe:
        pipe.delete(BACKLOG_KEY)
        if mapping:
            pipe.hset(BACKLOG_KEY, mapping=mapping)
        pipe.execute()


def running_remaining(workers: dict) -> float:
    """Predicted seconds the live workers' current jobs still need."""
    now = time.time()
    return sum(max(0.0, w["job_predicted"] - (now - w["job_started"]))
               for w in workers.values() if w.get("job_id") and w.get("job_predicted") and w.get("job_started"))


def wait_seconds(queue_name: str, position: int | None = None) -> float:
    """Seconds until a worker is free for a job in `queue_name` with `position` jobs of its own queue
    ahead of it (None: behind the whole queue)."""
    queues = backlog()
    order = settings.GENERATION_QUEUES
    served_first = order[: order.index(queue_name)] if queue_name in order else []
    ahead = sum(queues.get(name, (0, 0.0))[1] for name in served_first)
    count, seconds = queues.get(queue_name, (0, 0.0))
    if position is None:
        ahead += seconds
    elif count:
        ahead += seconds * position / count
    return worker_free_in(ahead)


def worker_free_in(seconds_ahead: float) -> float:
    """Seconds until a worker is free when `seconds_ahead` of queued work comes first: that work plus
    what the running jobs have left, shared among the live workers."""
    workers = heartbeat.live_workers_cached()
    return (seconds_ahead + running_remaining(workers)) / max(len(workers), 1)
