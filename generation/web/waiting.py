"""Waiting without a thread. A request that waits for its job (a generation request, up to
GENERATION_WAIT_SECONDS) or streams its events (`GET /api/v3/jobs/{id}/events`) is handled by Django
only as long as it takes to admit it: the view answers at once with a continuation (a private response
header, `continuation()`), and the ASGI application (config/asgi.py) carries it out here, on the event
loop, holding no thread, no database connection and no CPU until something happens.

Workers publish each job's events on Redis (generation/queueing/queue.py: queued, running, progress, finished, and
on a queue's channel the jobs that leave it). One pub/sub connection per web process (`Events`) hands them
to the requests waiting on that job; the database is read only to build an answer, in a short call on a
thread of the loop's pool that returns its connection at once.
"""

import asyncio
import json
import logging
from collections import defaultdict
from contextlib import contextmanager, suppress

import redis
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from generation import services
from generation.answers import a1111 as a1111_answers
from generation.answers import hosted
from generation.answers import openai as openai_answers
from generation.queueing import monitoring, queue

logger = logging.getLogger(__name__)

CONTINUE_HEADER = "X-Sdxl-Continue"  # set by a view, removed by config/asgi.py before the answer leaves
SCOPE_FLAG = "sdxl.continuations"  # in the ASGI scope when config/asgi.py carries continuations out
KEEPALIVE_SECONDS = 15.0  # an event stream sends a comment this often, so proxies keep it open
POSITIONS_EVERY = 0.05  # seconds: a queue's moves are looked up at most this often, for all its streams
POSITION = "position"  # the inbox channel of a stream's new queue position
# the front-ends' answers for a job waited for: (status, body) from (job id, the request's options)
FRONTEND_ANSWERS = {"openai": openai_answers.after_wait, "a1111": a1111_answers.after_wait}


def can_continue(request) -> bool:
    """Whether the server carries out continuations (the ASGI web tier; not a WSGI server, where a view
    waits in its thread)."""
    return bool(getattr(request, "scope", {}).get(SCOPE_FLAG))


def continuation(**plan) -> dict:
    """The response header that hands the rest of a request to the event loop: `wait=<job id>` with
    `timeout` and `fetch_path` (then the generation answer) or `answer` and `options` (then a
    front-end's answer, FRONTEND_ANSWERS), or `stream=<job id>` with `format` ("api" or "dashboard")."""
    return {CONTINUE_HEADER: json.dumps(plan)}


class Events:
    """This process's one subscription to every job's and queue's events, handed to the requests that
    wait on them (each an asyncio queue: no thread, no polling)."""

    def __init__(self):
        pool = aioredis.BlockingConnectionPool.from_url(settings.REDIS_CLIENT_URL, max_connections=32, timeout=30)
        self.redis = aioredis.Redis(connection_pool=pool)  # a burst waits for a connection, never fails
        self.inboxes: dict[str, set[asyncio.Queue]] = defaultdict(set)
        self.tracked: dict[str, dict[asyncio.Queue, str]] = defaultdict(dict)  # queue -> inbox -> RQ job id
        self.refreshing: set[str] = set()
        self.connected = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._listen())

    @contextmanager
    def positions(self, queue_name: str, rq_job_id: str, inbox: asyncio.Queue):
        """While the block runs, `inbox` gets (POSITION, jobs ahead) whenever a job leaves `queue_name`:
        the queue is read once for every stream on it, not once per stream."""
        self.tracked[queue_name][inbox] = rq_job_id
        try:
            yield
        finally:
            self.tracked[queue_name].pop(inbox, None)
            if not self.tracked[queue_name]:
                del self.tracked[queue_name]

    @contextmanager
    def inbox(self, *channels: str):
        """An asyncio queue that gets (channel, data) for each event on `channels` while the block runs."""
        inbox = asyncio.Queue()
        for channel in channels:
            self.inboxes[channel].add(inbox)
        try:
            yield inbox
        finally:
            for channel in channels:
                self.inboxes[channel].discard(inbox)
                if not self.inboxes[channel]:
                    del self.inboxes[channel]

    async def ready(self, timeout: float) -> bool:
        """Whether the subscription is up (within `timeout` seconds)."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), timeout)
        return self.connected.is_set()

    async def _listen(self):
        """Subscribe, hand every message on, and subscribe again after Redis comes back (then every
        inbox is told `reconnected`: it may have missed an event and looks again)."""
        listener = aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=None, socket_connect_timeout=5)
        backoff = 0.1
        while True:
            pubsub = listener.pubsub()
            try:
                await pubsub.psubscribe(queue.EVENTS + "*")
                self.connected.set()
                backoff = 0.1
                for channel in list(self.inboxes):
                    self._deliver(channel, b'{"event": "reconnected"}')
                async for message in pubsub.listen():
                    if message["type"] == "pmessage":
                        self._deliver(message["channel"].decode(), message["data"])
            except (redis.RedisError, OSError):
                self.connected.clear()
                logger.warning("Job events unavailable (Redis); subscribing again in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(5.0, backoff * 2)
            finally:
                with suppress(Exception):
                    await pubsub.aclose()

    def _deliver(self, channel: str, data: bytes):
        for inbox in self.inboxes.get(channel, ()):
            inbox.put_nowait((channel, data))
        if channel.startswith(queue.EVENTS + "queue:"):
            name = channel.removeprefix(queue.EVENTS + "queue:")
            if name in self.tracked and name not in self.refreshing:
                self.refreshing.add(name)
                asyncio.get_running_loop().call_later(POSITIONS_EVERY, self._refresh, name)

    def _refresh(self, name: str):
        asyncio.ensure_future(self._positions(name))

    async def _positions(self, name: str):
        """Hand each stream on queue `name` its job's place in it (one LRANGE for them all)."""
        self.refreshing.discard(name)
        try:
            waiting_ids = await self.redis.lrange(queue.queue_key(name), 0, -1)
        except redis.RedisError:
            return
        ahead = {rq_job_id.decode(): index for index, rq_job_id in enumerate(waiting_ids)}
        for inbox, rq_job_id in list(self.tracked.get(name, {}).items()):
            if rq_job_id in ahead:
                inbox.put_nowait((POSITION, ahead[rq_job_id]))


_events: dict[asyncio.AbstractEventLoop, Events] = {}


def events() -> Events:
    """The running loop's Events (made on first use)."""
    loop = asyncio.get_running_loop()
    if loop not in _events:
        _events[loop] = Events()
    return _events[loop]


def _returning_connection(function):
    """`function` in a thread of the loop's pool, giving its database connection back when it returns
    (to the pool, in the web tier), so that nothing is held while the request waits again."""

    def run(*args):
        try:
            return function(*args)
        finally:
            connection.close()

    return sync_to_async(run, thread_sensitive=False)


async def wait_finished(job_id: int, timeout: float, gone: asyncio.Future | None = None) -> bool:
    """Wait up to `timeout` seconds for the job to finish (or the client to go: `gone` done); True when it
    did. Never raises for Redis: without it the request answers what the job's state is."""
    hub = events()
    with hub.inbox(queue.job_channel(job_id)) as inbox:
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            if not await hub.ready(timeout) or await hub.redis.exists(queue.FINISHED_KEY.format(job_id)):
                return hub.connected.is_set()
            while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
                _, data = await _next(inbox, remaining, gone)
                if data is None:
                    return False
                event = json.loads(data).get("event")
                if event == "finished":
                    return True
                if event == "reconnected" and await hub.redis.exists(queue.FINISHED_KEY.format(job_id)):
                    return True
        except redis.RedisError:
            logger.warning("Waiting for job %s failed (Redis); answering its state", job_id)
        return False


async def _next(inbox: asyncio.Queue, timeout: float, gone: asyncio.Future | None):
    """The next (channel, data) of `inbox`, or (None, None) after `timeout` or once the client is gone."""
    getting = asyncio.ensure_future(inbox.get())
    waiting = {getting} | ({gone} if gone is not None else set())
    done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if getting in done:
        return getting.result()
    getting.cancel()
    return None, None


async def carry_out(plan: dict, start: dict, receive, send):
    """Do what a view left to the event loop (see `continuation`), answering with the headers of its
    response `start`."""
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        if "answer" in plan:
            await wait_finished(plan["wait"], plan["timeout"], gone)
            answer = _returning_connection(FRONTEND_ANSWERS[plan["answer"]])
            status, body = await answer(plan["wait"], plan["options"])
            with suppress(redis.RedisError):
                counted = monitoring.http_outcome(status)
                await events().redis.hincrby(*monitoring.request_count(plan["endpoint"], counted))
            await _send_json({**start, "status": status}, body, send)
        elif "wait" in plan:
            finished = await wait_finished(plan["wait"], plan["timeout"], gone)
            body = await _cached_answer(plan["wait"]) if finished else None
            if body is None:  # not finished (the answer says where it stands), or Redis lost it
                body = await _returning_connection(services.answer_after_wait)(
                    plan["wait"], plan["fetch_path"], plan["endpoint"]
                )
            else:
                with suppress(redis.RedisError):
                    await events().redis.hincrby(*monitoring.request_count(plan["endpoint"], body["status"]))
            await _send_json(start, body, send)
        else:
            await _stream(plan["stream"], plan["format"], start, send, gone)
    finally:
        gone.cancel()


async def _cached_answer(job_id: int) -> dict | None:
    """The finished job's answer as its worker kept it (generation/lifecycle/jobs.py), without the database."""
    try:
        cached = await events().redis.get(queue.ANSWER_KEY.format(job_id))
    except redis.RedisError:
        return None
    return json.loads(cached)[1] if cached else None


async def _disconnected(receive):
    while (await receive())["type"] != "http.disconnect":
        pass


def _headers(start: dict, content_type: bytes, extra=()) -> list:
    kept = [
        (name, value) for name, value in start["headers"] if name.lower() not in (b"content-type", b"content-length")
    ]
    return [*kept, (b"content-type", content_type), *extra]


async def _send_json(start: dict, body: dict, send):
    data = json.dumps(body).encode()
    headers = _headers(start, b"application/json", [(b"content-length", str(len(data)).encode())])
    with suppress(OSError):
        await send({"type": "http.response.start", "status": start["status"], "headers": headers})
        await send({"type": "http.response.body", "body": data})


async def _stream(job_id: int, form: str, start: dict, send, gone: asyncio.Future):
    """Server-Sent Events: where the job stands now, then each change (queue position, progress, preview)
    and the final answer, then the end. A comment every KEEPALIVE_SECONDS keeps proxies from closing it."""
    hub = events()
    headers = _headers(start, b"text/event-stream", [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")])
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    snapshot = await _returning_connection(services.stream_snapshot)(job_id, form)
    try:
        with (
            hub.inbox(queue.job_channel(job_id)) as inbox,
            hub.positions(snapshot["queue_name"], snapshot["rq_job_id"], inbox),
        ):
            await hub.ready(KEEPALIVE_SECONDS)
            # looked at again once subscribed, so that no event falls between the two
            snapshot = await _returning_connection(services.stream_snapshot)(job_id, form)
            state = snapshot["body"]
            await _send_event(send, *snapshot["event"])
            while not snapshot["finished"]:
                channel, data = await _next(inbox, KEEPALIVE_SECONDS, gone)
                if gone.done():
                    return
                if data is None:
                    await send({"type": "http.response.body", "body": b": keepalive\n\n", "more_body": True})
                    continue
                change = _change(channel, data, snapshot)
                if change == "look again":
                    snapshot = await _returning_connection(services.stream_snapshot)(job_id, form)
                    state = snapshot["body"]
                    await _send_event(send, *snapshot["event"])
                elif change and any(state.get(name) != value for name, value in change.items()):
                    state = {**state, **change}
                    await _send_event(send, snapshot["event"][0], state)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except OSError:  # the client went away while we wrote
        pass


def _change(channel: str, data, snapshot: dict):
    """What an event changes in the stream's state: fields to send, "look again" (the job ended, was
    queued again, or events may have been missed) or None."""
    if channel == POSITION:  # a job left the queue: this one moved up
        return {"queue_position": data}
    event = json.loads(data)
    kind = event.pop("event", "")
    if kind == "progress":
        return hosted.stream_progress(event, snapshot["format"])
    if kind == "running":
        return hosted.stream_progress({"progress": 0.0, "queue_position": 0}, snapshot["format"], running=True)
    return "look again" if kind in ("finished", "queued", "reconnected") else None


async def _send_event(send, name: str, data: dict):
    await send(
        {
            "type": "http.response.body",
            "body": f"event: {name}\ndata: {json.dumps(data)}\n\n".encode(),
            "more_body": True,
        }
    )
