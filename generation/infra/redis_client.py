"""This process's Redis clients: one connection pool per URL, shared by its threads (a new client per
call would open a TCP connection each time), and one without a read timeout for blocking waits."""

import time
import uuid

import redis
from django.conf import settings

_clients: dict[str, redis.Redis] = {}
_blocking: dict[str, redis.Redis] = {}


def connection() -> redis.Redis:
    """The client every module uses for short commands."""
    url = settings.RQ_QUEUES["default"]["URL"]
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(url)
    return client


def blocking_connection() -> redis.Redis:
    """A client without a read timeout: a blocking command (BLPOP) bounds its own wait (the default
    client gives up after 5 s)."""
    url = settings.REDIS_URL
    client = _blocking.get(url)
    if client is None:
        client = _blocking[url] = redis.Redis.from_url(url, socket_timeout=None, socket_connect_timeout=5)
    return client


def within_rate(key: str, limit: int, window: float) -> float:
    """Count one event under `key` if fewer than `limit` were counted in the last `window` seconds (a
    sliding window: no burst of twice the limit across a boundary, no reset at one); 0 when it was
    counted, else the seconds until it would be."""
    now, event = time.time(), uuid.uuid4().hex
    with connection().pipeline() as pipe:
        pipe.zremrangebyscore(key, 0, now - window)
        pipe.zadd(key, {event: now})
        pipe.zcard(key)
        pipe.zrange(key, 0, 0, withscores=True)
        pipe.expire(key, int(window) + 1)
        _, _, count, oldest, _ = pipe.execute()
    if count <= limit:
        return 0.0
    connection().zrem(key, event)  # a refused event does not count
    return max(0.001, oldest[0][1] + window - now)
