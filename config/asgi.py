"""The ASGI application that config/gunicorn.py serves: Django, behind a cap on request bodies, with what
its views hand over to the event loop carried out (generation/web/waiting.py: waiting for a job, streaming its
events), so that a request that waits holds no thread."""

import asyncio
import contextvars
import json
import os
import warnings

import django
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DB_POOL", "true")  # a thread per request: connections come from a pool (settings)
django.setup(set_prefix=False)

from generation.web import waiting  # noqa: E402  (the project's modules load once Django is set up)

_slots: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}
_holding = contextvars.ContextVar("holding_a_slot", default=False)


class BoundedASGIHandler(ASGIHandler):
    """Django's ASGI handler with at most WEB_MAX_CONCURRENT_REQUESTS requests in its sync code at once.

    Django runs each request's sync code in a thread of its own, with no bound: a thousand clients at once
    meant a thousand threads, each wanting a database and a Redis connection. Here a request takes a slot
    once its body is in (a slow client holds none) and gives it back as soon as Django has answered —
    before any wait the answer hands to the event loop — so the rest queue as coroutines, not threads."""

    async def read_body(self, receive):
        body = await super().read_body(receive)
        loop = asyncio.get_running_loop()
        if loop not in _slots:
            _slots[loop] = asyncio.Semaphore(settings.WEB_MAX_CONCURRENT_REQUESTS)
        await _slots[loop].acquire()
        _holding.set(True)
        return body

    async def handle(self, scope, receive, send):
        _holding.set(False)
        try:
            await super().handle(scope, receive, send)
        finally:
            if _holding.get():
                _slots[asyncio.get_running_loop()].release()


django_application = BoundedASGIHandler()

# Stored images are read in a worker thread as FileResponse chunks; Django warns about it on every one.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")


class BodyLimit:
    """Stop reading a request body one byte past DATA_UPLOAD_MAX_MEMORY_SIZE, and give Django the length of
    a chunked one.

    Django's ASGI handler spools the whole body to a temporary file before any view looks at it, so a
    client could fill the disk. Past the cap the body ends for Django, which refuses the request as it
    does under WSGI (the API answers "Request body too large" in its envelope); whatever else the client
    sends is read and dropped, never stored. Django reads as many bytes as Content-Length says, none
    without it: a body sent with `Transfer-Encoding: chunked` is gathered first (within the same cap) and
    handed on with its length."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        received, ended = 0, False

        async def capped_receive():
            nonlocal received, ended
            message = await receive()
            while ended and message["type"] == "http.request":  # the rest of a body cut at the cap
                message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")[: self.limit + 1 - received]
                received += len(body)
                ended = not message.get("more_body", False) or received > self.limit
                message = {**message, "body": body, "more_body": not ended}
            return message

        if _chunked(scope):
            body, message = b"", {"more_body": True}
            while message.get("more_body") and message.get("type", "http.request") == "http.request":
                message = await capped_receive()
                body += message.get("body", b"")
            if message["type"] != "http.request":
                return  # the client went away mid-body
            headers = [(name, value) for name, value in scope["headers"] if name != b"transfer-encoding"]
            scope = {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
            replayed = [{"type": "http.request", "body": body, "more_body": False}]
            return await self.app(scope, lambda: _next(replayed, receive), send)
        return await self.app(scope, capped_receive, send)


def _chunked(scope) -> bool:
    return any(name == b"transfer-encoding" and b"chunked" in value.lower() for name, value in scope["headers"])


async def _next(replayed: list, receive):
    """The gathered body once, then what the client sends next (its disconnect)."""
    return replayed.pop() if replayed else await receive()


class Continuations:
    """Lets Django views hand the rest of a request to the event loop: a response carrying
    waiting.CONTINUE_HEADER is held back, and its plan carried out (generation/web/waiting.py) once Django is
    done with the request, its thread and database connection returned."""

    marker = waiting.CONTINUE_HEADER.lower().encode()

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        held = {}

        async def hold(message):
            if message["type"] == "http.response.start":
                plan = [value for name, value in message["headers"] if name.lower() == self.marker]
                if plan:
                    headers = [(name, value) for name, value in message["headers"] if name.lower() != self.marker]
                    held.update(plan=json.loads(plan[0]), start={**message, "headers": headers})
                    return
            if held:
                return  # the placeholder body of a held response
            await send(message)

        await self.app({**scope, waiting.SCOPE_FLAG: True}, receive, hold)
        if held:
            await waiting.carry_out(held["plan"], held["start"], receive, send)


application = BodyLimit(Continuations(django_application), settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
