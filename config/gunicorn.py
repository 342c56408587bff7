"""gunicorn's settings for the web tier: `gunicorn -c config/gunicorn.py config.asgi` (make run does).

Uvicorn workers read requests on an event loop: a client that sends its headers or body slowly holds
a coroutine and a socket, not a thread. Django runs each view in a thread once its body is in (see
config/asgi.py for the cap on body size). `WEB_CONCURRENCY` (gunicorn's own variable) sets the number
of processes; put a reverse proxy in front in production (docs/deploy.md)."""

import os

bind = os.environ.get("WEB_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "config.web.Worker"  # uvicorn, with a bounded request head
keepalive = 5
graceful_timeout = 20
accesslog = os.environ.get("WEB_ACCESS_LOG") or None  # a path, or "-" for the terminal
errorlog = os.environ.get("WEB_ERROR_LOG", "-")
