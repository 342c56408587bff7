"""Waiting without a thread (generation/web/waiting.py): requests that wait for their jobs and event streams
hold no thread and no database connection while they wait, streams deliver queue position, progress,
previews and the final answer, and a client that goes away leaves its job running and nothing behind.
The worker is paused while requests wait, so nothing here depends on how long a job takes."""

import asyncio
import json
import socket
import threading

import pytest
import requests
from django.db import connection

from billing import credits
from billing.models import Plan
from generation.models import Job
from generation.web import waiting
from tests.conftest import paused, step_until
from tests.test_recovery import wait_until

TINY = {"prompt": "a lighthouse", "width": 64, "height": 64, "num_inference_steps": 2}


@pytest.fixture
def roomy(account):
    """The account's plan lets it queue a hundred jobs."""
    Plan.objects.filter(pk=credits.account_for(account[0]).plan_id).update(max_queued_jobs=100)
    return account


def backends() -> int:
    """Connections to the test database, the test's own among them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


class Requests(threading.Thread):
    """`bodies` POSTed to `path` all at once from one thread (asyncio, raw HTTP/1.1), so the requests
    themselves add no thread to count; `answers` holds their JSON bodies once they are all answered."""

    def __init__(self, base_url: str, path: str, bodies: list[dict], headers: dict | None = None):
        super().__init__(daemon=True)
        self.host, self.port = base_url.split("//")[1].split(":")
        self.path, self.bodies, self.answers = path, bodies, None
        self.headers = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self.start()

    async def _post(self, body: dict) -> dict:
        reader, writer = await asyncio.open_connection("127.0.0.1", int(self.port))
        data = json.dumps(body).encode()
        writer.write(
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n{self.headers}"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
            + data
        )
        reply = await reader.read()
        writer.close()
        return json.loads(reply.partition(b"\r\n\r\n")[2])

    def run(self):
        async def everyone():
            return await asyncio.gather(*(self._post(body) for body in self.bodies))

        self.answers = asyncio.run(everyone())


@pytest.mark.postgres_only  # pg_stat_activity, and a paused worker
def test_waiting_requests_hold_no_thread_and_no_database_connection(api, roomy, worker, settings):
    settings.GENERATION_WAIT_SECONDS = 300  # they wait until the test lets the worker run
    user, _ = roomy
    count = 24
    with paused(worker):
        threads, connections = threading.active_count(), backends()
        clients = Requests(
            api.base_url, "/api/v3/text2img", [{"key": api.key, **TINY, "seed": i} for i in range(count)]
        )
        wait_until(lambda: Job.objects.filter(user=user).count() == count)
        wait_until(lambda: backends() <= connections + 1, timeout=30)  # the admissions' connections went back
        assert threading.active_count() <= threads + 1 + 8  # the client's, and the loop's small thread pool
        assert not any(job.is_finished for job in Job.objects.filter(user=user))
        assert clients.answers is None  # all still waiting
    clients.join(timeout=120)
    assert [answer["status"] for answer in clients.answers] == ["success"] * count


@pytest.mark.postgres_only  # pg_stat_activity, and a paused worker
def test_front_end_requests_wait_without_a_thread_too(api, roomy, worker, settings):
    """OpenAI's and A1111's clients cannot poll: their requests wait for the images, on the event loop."""
    settings.OPENAI_QUALITY_STEPS = {**settings.OPENAI_QUALITY_STEPS, "low": 1}
    user, _ = roomy
    count, auth = 8, {"Authorization": f"Bearer {api.key}"}
    with paused(worker):
        threads, connections = threading.active_count(), backends()
        openai = Requests(
            api.base_url, "/v1/images/generations", [{"prompt": "x", "size": "64x64", "quality": "low"}] * count, auth
        )
        a1111 = Requests(
            api.base_url, "/sdapi/v1/txt2img", [{"prompt": "x", "width": 64, "height": 64, "steps": 1}] * count, auth
        )
        wait_until(lambda: Job.objects.filter(user=user).count() == 2 * count)
        wait_until(lambda: backends() <= connections + 1, timeout=30)
        assert threading.active_count() <= threads + 2 + 8  # the two clients', and the loop's small pool
        assert openai.answers is None and a1111.answers is None  # all still waiting
    openai.join(timeout=120)
    a1111.join(timeout=120)
    assert all(len(answer["data"]) == 1 for answer in openai.answers)
    assert all(len(answer["images"]) == 1 for answer in a1111.answers)


class Stream(threading.Thread):
    """The events of one job, read in the background."""

    def __init__(self, url: str, headers: dict):
        super().__init__(daemon=True)
        self.response = requests.get(url, headers=headers, stream=True, timeout=300)
        self.events = []
        self.start()

    def run(self):
        name = None
        for line in self.response.iter_lines(chunk_size=None, decode_unicode=True):  # each event as it comes
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                self.events.append((name, json.loads(line.removeprefix("data: "))))


@pytest.mark.postgres_only  # a paused worker may hold SQLite's one write lock
def test_an_event_stream_delivers_position_progress_previews_and_the_answer(api, account, worker):
    user, _ = account
    with paused(worker):  # the first job goes to the paused worker at once, the second waits ahead of ours
        ahead = [api.post("/api/v3/text2img", {**TINY, "instant_response": "yes"}) for _ in range(2)]
        job = api.post(
            "/api/v3/text2img",
            {**TINY, "width": 256, "height": 256, "num_inference_steps": 50, "instant_response": "yes"},
        )
        stream = Stream(f"{api.base_url}/api/v3/jobs/{job['id']}/events", {"Authorization": f"Bearer {api.key}"})
        assert stream.response.headers["Content-Type"] == "text/event-stream"
        wait_until(lambda: stream.events)
        first = stream.events[0]
        assert first[0] == "processing" and first[1]["queue_position"] == 1 and first[1]["id"] == job["id"]
        step_until(  # every event counts as a change, so the worker is let run a step or two at a time
            worker,
            lambda: (len(stream.events), len({event["preview"] for _, event in stream.events if event.get("preview")})),
            lambda seen: seen[-1][1] >= 2,
        )
    stream.join(timeout=120)
    names = [name for name, _ in stream.events]
    assert names[-1] == "result" and set(names[:-1]) == {"processing"}
    positions = [event["queue_position"] for _, event in stream.events[:-1]]
    assert positions[0] == 1 and 0 in positions  # it moved up when the job ahead started
    progress = [event["progress"] for _, event in stream.events[:-1]]
    assert progress == sorted(progress) and any(0 < value < 1 for value in progress)
    phases = [event["phase"] for _, event in stream.events[:-1] if "phase" in event]
    assert phases[0] == "denoising" and phases[-2:] == ["decoding", "saving"]  # after the last step: said
    assert all(event["preview"].startswith("http") for _, event in stream.events[:-1] if event.get("preview"))
    assert stream.events[-1][1] == api.post(f"/api/v3/fetch/{job['id']}")  # the body fetch gives
    assert stream.events[-1][1]["status"] == "success"
    assert all(api.post(f"/api/v3/fetch/{other['id']}")["status"] == "success" for other in ahead)


@pytest.mark.postgres_only  # pg_stat_activity, and a paused worker
def test_idle_streams_hold_no_database_connection_and_a_canceled_job_ends_its_stream(api, roomy, worker):
    headers = {"Key": api.key}
    with paused(worker):
        jobs = [api.post("/api/v3/text2img", {**TINY, "instant_response": "yes"})["id"] for _ in range(12)]
        connections = backends()
        streams = [Stream(f"{api.base_url}/api/v3/jobs/{job}/events", headers) for job in jobs]
        wait_until(lambda: all(stream.events for stream in streams))
        wait_until(lambda: backends() <= connections + 1, timeout=30)
        assert api.post(f"/api/v3/cancel/{jobs[-1]}")["canceled"] is True
        streams[-1].join(timeout=60)
        assert streams[-1].events[-1][0] == "result" and streams[-1].events[-1][1]["canceled"] is True
    for stream in streams[:-1]:
        stream.join(timeout=120)
        assert stream.events[-1][1]["status"] == "success"


def test_a_stream_needs_the_key_in_a_header_and_the_accounts_own_job(api, live_server):
    job = api.post("/api/v3/text2img", {**TINY, "instant_response": "yes"})["id"]
    url = f"{live_server.url}/api/v3/jobs/{job}/events"
    assert requests.get(url + f"?key={api.key}", timeout=10).json()["message"] == "Invalid Api Key"
    assert (
        requests.get(url.replace(str(job), str(job + 1000)), headers={"Key": api.key}, timeout=10).json()["message"]
        == "Request not found"
    )


@pytest.mark.postgres_only  # a paused worker may hold SQLite's one write lock
def test_a_client_that_goes_away_mid_wait_leaves_its_job_running_and_nothing_behind(api, account, worker, settings):
    settings.GENERATION_WAIT_SECONDS = 300
    user, _ = account
    with paused(worker):
        body = json.dumps({"key": api.key, **TINY}).encode()
        with socket.create_connection(("127.0.0.1", int(api.base_url.rsplit(":", 1)[1]))) as sock:
            sock.sendall(
                b"POST /api/v3/text2img HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            wait_until(lambda: Job.objects.filter(user=user).exists())
            job = Job.objects.get(user=user)
            wait_until(
                lambda: any(str(job.id) in channel for hub in waiting._events.values() for channel in hub.inboxes)
            )
        wait_until(lambda: not any(hub.inboxes for hub in waiting._events.values()))  # it stopped waiting
    wait_until(lambda: Job.objects.get(pk=job.pk).status == Job.Status.SUCCESS, timeout=120)  # and the job ran
