"""Health checks and Prometheus metrics.

Counters that several processes add to (API requests per endpoint and outcome, the generation-time
histogram written by the workers) live in Redis hashes, so every web and worker process counts into
the same series; gauges (queue depth, jobs by status, workers) are read at scrape time. The text
format comes from prometheus_client.
"""

import logging
import math
import time

import redis
from django.conf import settings
from django.db import connection
from django.db.models import Count
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import generate_latest

from generation.infra import redis_client
from generation.models import Job
from generation.queueing import liveness, queue

logger = logging.getLogger(__name__)

REQUESTS_KEY = "sdxl:metrics:requests"
GENERATION_KEY = "sdxl:metrics:generation:{}"
BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, math.inf)


def _bucket_label(bound: float) -> str:
    return "+Inf" if bound == math.inf else repr(float(bound))


def request_count(endpoint: str, status: str) -> tuple[str, str, int]:
    """The HINCRBY arguments that count one answer (for a client of either kind)."""
    return REQUESTS_KEY, f"{endpoint}|{status}", 1


def http_outcome(http_status: int) -> str:
    """A front-end's answer counted like the hosted API's, by what it said: "success" or "error"."""
    return "success" if http_status < 400 else "error"


def count_request(endpoint: str, status: str):
    """One API answer; never lets a Redis hiccup break the request it counts."""
    try:
        redis_client.connection().hincrby(*request_count(endpoint, status))
    except redis.RedisError:
        pass


def observe_generation(pipe, kind: str, seconds: float):
    """Add a finished job's generation time to the histogram (cumulative buckets, as Prometheus counts),
    on the caller's Redis pipeline."""
    key = GENERATION_KEY.format(kind)
    for bound in BUCKETS:
        if seconds <= bound:
            pipe.hincrby(key, _bucket_label(bound), 1)
    pipe.hincrbyfloat(key, "sum", seconds)


class _Collector:
    def collect(self):
        conn = redis_client.connection()
        requests = CounterMetricFamily(
            "sdxl_api_requests", "API answers by endpoint and status", labels=["endpoint", "status"]
        )
        for field, value in sorted(conn.hgetall(REQUESTS_KEY).items()):
            endpoint, _, status = field.decode().partition("|")
            requests.add_metric([endpoint, status], int(value))
        yield requests

        depth = GaugeMetricFamily("sdxl_queue_depth", "Jobs waiting on each RQ queue", labels=["queue"])
        for name in sorted(set(settings.GENERATION_QUEUES) | set(queue.known_queue_names())):
            depth.add_metric([name], conn.llen(queue.queue_key(name)))
        yield depth

        by_status = dict(Job.objects.values_list("status").annotate(n=Count("id")))
        jobs = GaugeMetricFamily("sdxl_jobs", "Jobs by status", labels=["status"])
        for status in Job.Status.values:
            jobs.add_metric([status], by_status.get(status, 0))
        yield jobs

        histogram = HistogramMetricFamily(
            "sdxl_generation_seconds", "Seconds on the worker per successful job", labels=["kind"]
        )
        for kind in Job.Kind.values:
            stored = {k.decode(): v for k, v in conn.hgetall(GENERATION_KEY.format(kind)).items()}
            buckets = [(_bucket_label(b), int(stored.get(_bucket_label(b), 0))) for b in BUCKETS]
            histogram.add_metric([kind], buckets, float(stored.get("sum", 0)))
        yield histogram

        yield GaugeMetricFamily("sdxl_workers", "Workers with a fresh heartbeat", value=len(liveness.live_workers()))


def render_metrics() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    return generate_latest(registry)


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        result = check() or {}
        return {"ok": True, **result, "ms": round((time.perf_counter() - started) * 1000, 1)}
    except Exception as exc:
        logger.warning("Health check failed: %s", exc)
        return {"ok": False, "error": type(exc).__name__, "ms": round((time.perf_counter() - started) * 1000, 1)}


def _database():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        connection.close()  # the next request opens a fresh one
        raise


def _redis():
    redis_client.connection().ping()


def _workers():
    count = len(liveness.live_workers())
    if count == 0:
        raise RuntimeError("no live worker")
    return {"count": count}


def health() -> dict:
    """Database, Redis and at least one live worker; `ok` only when all three are."""
    checks = {"database": _timed(_database), "redis": _timed(_redis), "workers": _timed(_workers)}
    return {"status": "ok" if all(check["ok"] for check in checks.values()) else "error", "checks": checks}
