"""How long jobs take on this deployment's workers, and how long a job will wait.

- **Timings**: after each job a worker updates, for the job's shape (kind, size, images), a moving
  average of the fixed cost (text encoding, VAE decode, saving) and of the cost of one denoising step,
  measured between the pipeline's step callbacks. A job's prediction is fixed + step × the steps the
  scheduler will really run (`JobParams.denoising_steps`); an unseen shape is scaled from the closest
  seen one by its relative work (pixels × images).
- **Backlog**: Redis keeps, per queue, the number of queued jobs and their predicted seconds
  (generation/queueing/queue.py). It moves with each enqueue and start and is recounted from the database by the
  workers' periodic maintenance, so it cannot drift for long.
- **ETA** of a queued job: the predicted work ahead of it (queues served first, then its own queue up
  to its position) plus what running jobs have left, shared among the live workers, plus its own time.
"""

import json
import math
import time

from django.conf import settings
from django.db.models import Count, Sum

from generation.infra.redis_client import connection
from generation.kinds.base import JobParams
from generation.models import Job
from generation.queueing import liveness, queue

TIMINGS_KEY = "sdxl:timings"
DEFAULT_SECONDS = 10.0  # before any job of any shape has run
SMOOTHING = 0.3  # weight of the newest measurement in the moving averages
CACHE_SECONDS = 5.0

_cache = {"at": -math.inf, "timings": {}}


def _timings() -> dict:
    """All learned timings, cached in this process for a few seconds."""
    if time.monotonic() - _cache["at"] > CACHE_SECONDS:
        stored = connection().hgetall(TIMINGS_KEY)
        _cache["timings"] = {key.decode(): json.loads(value) for key, value in stored.items()}
        _cache["at"] = time.monotonic()
    return _cache["timings"]


def predict(params: JobParams) -> float:
    """Predicted seconds on a worker for a job with these parameters."""
    timings = _timings()
    steps = params.denoising_steps()
    known = timings.get(params.shape())
    if known:
        return known["fixed"] + known["step"] * steps
    same_kind = [t for key, t in timings.items() if key.startswith(f"{params.kind}:")] or list(timings.values())
    if not same_kind:
        return DEFAULT_SECONDS
    work = params.work()
    closest = min(same_kind, key=lambda t: abs(math.log(work / t["work"])))
    return (closest["fixed"] + closest["step"] * steps) * work / closest["work"]


def learn(pipe, params: JobParams, seconds: float, step_seconds: float | None):
    """Fold a finished job's measured time into its shape's moving averages, on the caller's Redis
    pipeline. Runs on the worker, which starts from what it last read or learned (workers sharing a
    shape blend their measurements through Redis)."""
    key = params.shape()
    old = _timings().get(key)
    steps = params.denoising_steps()
    step = step_seconds if step_seconds is not None else (old["step"] if old else 0.0)
    fixed = max(0.0, seconds - step * steps)
    if old:
        fixed = old["fixed"] + SMOOTHING * (fixed - old["fixed"])
        step = old["step"] + SMOOTHING * (step - old["step"])
    record = {"fixed": fixed, "step": step, "work": params.work(), "n": (old["n"] + 1) if old else 1}
    _cache["timings"][key] = record
    pipe.hset(TIMINGS_KEY, key, json.dumps(record))


def recount():
    """Reset the backlog from the database, the source of truth (maintenance does this periodically)."""
    rows = (
        Job.objects.filter(status=Job.Status.QUEUED)
        .values("queue_name")
        .annotate(count=Count("id"), seconds=Sum("predicted_seconds"))
    )
    queue.reset_backlog({row["queue_name"]: (row["count"], row["seconds"] or 0.0) for row in rows})


def running_remaining(workers: dict) -> float:
    """Predicted seconds the live workers' current jobs still need."""
    now = time.time()
    return sum(
        max(0.0, w["job_predicted"] - (now - w["job_started"]))
        for w in workers.values()
        if w.get("job_id") and w.get("job_predicted") and w.get("job_started")
    )


def wait_seconds(queue_name: str, position: int | None = None) -> float:
    """Seconds until a worker is free for a job in `queue_name` with `position` jobs of its own queue
    ahead of it (None: behind the whole queue)."""
    queues = queue.backlog()
    order = settings.GENERATION_QUEUES
    priority, checkpoint = queue.split_queue_name(queue_name)
    higher = order[: order.index(priority)] if priority in order else []
    served_first = [queue.queue_name(name, checkpoint) for name in higher]
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
    workers = liveness.live_workers_cached()
    return (seconds_ahead + running_remaining(workers)) / max(len(workers), 1)
