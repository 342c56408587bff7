"""This process's Redis clients: one connection pool per URL, shared by its threads (a new client per
call would open a TCP connection each time), and one without a read timeout for blocking waits."""

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
