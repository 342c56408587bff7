"""Which workers are alive, read from the short-lived keys their heartbeats keep fresh.

Each worker process keeps `sdxl:worker:<name>` fresh from a daemon thread (generation/runtime/heartbeat.py),
also while a long job holds its main thread. The key vanishes a few seconds after the process dies
(kill -9, out of memory, a lost machine): that is how recovery knows a running job has nobody left to
finish it. The key's value says what the worker is: host, pid, queues, model, device and the job it runs.
"""

import json
import time

from django.conf import settings

from generation.infra.redis_client import connection

KEY = "sdxl:worker:{}"
REGISTRY = "sdxl:workers"
EPOCH_KEY = "sdxl:epoch"  # when Redis's data began; gone = Redis lost its data (restarted, flushed)
CHECKPOINTS_SEEN = "sdxl:checkpoints-seen"  # checkpoint id -> when a live worker last held it
CACHE_SECONDS = 1.0

_cached = {"at": 0.0, "workers": {}}


def ttl() -> int:
    """Seconds a heartbeat stays valid: three missed beats."""
    return max(2, int(settings.WORKER_HEARTBEAT_INTERVAL * 3 + 0.999))


def publish(name: str, record: dict):
    """Say that worker `name` is alive, what it holds and what it is doing, for the next `ttl()` seconds."""
    with connection().pipeline() as pipe:
        pipe.set(KEY.format(name), json.dumps(record), ex=ttl())
        pipe.sadd(REGISTRY, name)
        if record.get("checkpoints"):
            pipe.hset(CHECKPOINTS_SEEN, mapping=dict.fromkeys(record["checkpoints"], record["beat_at"]))
        pipe.execute()


def checkpoint_served_within(checkpoint: str, seconds: float) -> bool:
    """Whether a live worker held `checkpoint` in the last `seconds`."""
    seen = connection().hget(CHECKPOINTS_SEEN, checkpoint)
    return seen is not None and time.time() - float(seen) <= seconds


def withdraw(name: str):
    """Worker `name` stopped cleanly."""
    with connection().pipeline() as pipe:
        pipe.delete(KEY.format(name))
        pipe.srem(REGISTRY, name)
        pipe.execute()


def live_workers() -> dict[str, dict]:
    """Every worker whose heartbeat is fresh, by name."""
    conn = connection()
    names = sorted(name.decode() for name in conn.smembers(REGISTRY))
    if not names:
        return {}
    values = conn.mget([KEY.format(name) for name in names])
    gone = [name for name, value in zip(names, values) if value is None]
    if gone:
        conn.srem(REGISTRY, *gone)
    return {name: json.loads(value) for name, value in zip(names, values) if value is not None}


def live_workers_cached() -> dict[str, dict]:
    """live_workers(), at most CACHE_SECONDS old (for the ETA of every API answer)."""
    if time.monotonic() - _cached["at"] > CACHE_SECONDS:
        _cached["workers"] = live_workers()
        _cached["at"] = time.monotonic()
    return _cached["workers"]


def begin_epoch(name: str) -> bool:
    """Mark when Redis's data began, if no worker has yet; True for the worker that did (it runs the
    data-loss recovery)."""
    conn = connection()
    return not conn.exists(EPOCH_KEY) and bool(conn.set(EPOCH_KEY, json.dumps([time.time(), name]), nx=True))


def heartbeats_since() -> float:
    """Since when a missing heartbeat means a dead worker: when Redis's data began (before that, and
    until a worker marks it, every key was lost with the data and nobody can tell yet)."""
    value = connection().get(EPOCH_KEY)
    try:
        return float(json.loads(value)[0]) if value else time.time()
    except (ValueError, TypeError, IndexError):  # an epoch written before it carried its time
        return 0.0


def record(worker_name: str) -> dict | None:
    """What a live worker last said of itself; None for a worker that is gone."""
    value = connection().get(KEY.format(worker_name)) if worker_name else None
    return json.loads(value) if value is not None else None
