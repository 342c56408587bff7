"""Per-job progress in fetch (beyond v3): queue position, progress from the real scheduler steps, ETA."""

import io
import time

import pytest
import requests
from PIL import Image

from generation.lifecycle import jobs
from generation.models import Job
from tests.conftest import paused, step_until
from tests.test_fetch import _params


def follow(api, job_id, timeout=120) -> list[dict]:
    bodies, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api.post(f"/api/v3/fetch/{job_id}")
        bodies.append(body)
        if body["status"] != "processing":
            break
        time.sleep(0.05)
    return bodies


@pytest.mark.postgres_only  # a paused worker may hold SQLite's one write lock
def test_progress_grows_monotonically_to_one(api, worker):
    """The worker is paused and let run in slices, so the job is seen mid-way on any machine."""
    with paused(worker):
        job_id = api.post(
            "/api/v3/text2img",
            {"prompt": "p", "width": 64, "height": 64, "num_inference_steps": 40, "instant_response": "yes"},
        )["id"]

        def three_values_or_done(bodies):
            running = {b["progress"] for b in bodies if b["status"] == "processing"}
            return len(running) >= 3 or bodies[-1]["status"] != "processing"

        bodies = step_until(
            worker,
            lambda: api.post(f"/api/v3/fetch/{job_id}"),
            three_values_or_done,
            key=lambda body: (body["status"], body.get("progress")),
        )
    bodies += follow(api, job_id)
    assert bodies[-1]["status"] == "success"
    progress = [b["progress"] for b in bodies if b["status"] == "processing"]
    assert len(set(progress)) >= 3 and progress == sorted(progress) and progress[-1] < 1
    assert all(isinstance(b["eta"], float) and isinstance(b["queue_position"], int) for b in bodies[:-1])
    job = Job.objects.get(pk=job_id)
    assert (job.progress_step, job.progress_total) == (40, 40)


@pytest.mark.postgres_only  # a paused worker may hold SQLite's one write lock
def test_second_order_scheduler_counts_its_real_steps(api, worker):
    """Heun runs 39 model steps for 20: progress seen mid-way is a share of those, and ends at 39/39."""
    with paused(worker):
        job_id = api.post(
            "/api/v3/text2img",
            {
                "prompt": "p",
                "width": 128,
                "height": 128,
                "num_inference_steps": 20,
                "scheduler": "Heun",
                "instant_response": "yes",
            },
        )["id"]
        bodies = step_until(
            worker,
            lambda: api.post(f"/api/v3/fetch/{job_id}"),
            lambda seen: any(0 < body.get("progress", 0) < 1 for body in seen if body["status"] == "processing"),
            key=lambda body: (body["status"], body.get("progress")),
        )
    bodies += follow(api, job_id)
    assert bodies[-1]["status"] == "success"
    progress = [b["progress"] for b in bodies if b["status"] == "processing"]
    assert progress == sorted(progress) and any(0 < p < 1 for p in progress)
    job = Job.objects.get(pk=job_id)
    assert job.progress_total == job.progress_step > 20  # Heun evaluates the model twice per step


def test_queue_position_counts_the_jobs_ahead(api, account):
    user, _ = account
    parked = [jobs.submit(user=user, params=_params(), base_url=api.base_url, queue_name="parked") for _ in range(3)]
    positions = [api.post(f"/api/v3/fetch/{job.id}")["queue_position"] for job in parked]
    assert positions == [0, 1, 2]
    assert api.post(f"/api/v3/fetch/{parked[2].id}")["progress"] == 0.0


@pytest.mark.postgres_only  # a paused worker may hold SQLite's one write lock
def test_a_running_job_shows_a_preview_that_changes_and_is_gone_at_the_end(api, worker):
    """fetch (beyond v3) gives the latest `preview` of the image forming: a JPEG decoded from the
    latents without weights; a new one as steps go on; deleted when the job ends."""
    with paused(worker):
        job_id = api.post(
            "/api/v3/text2img",
            {"prompt": "p", "width": 128, "height": 96, "num_inference_steps": 40, "instant_response": "yes"},
        )["id"]

        def two_previews_or_done(bodies):
            return len({b["preview"] for b in bodies if b.get("preview")}) >= 2 or bodies[-1]["status"] != "processing"

        bodies = step_until(
            worker,
            lambda: api.post(f"/api/v3/fetch/{job_id}"),
            two_previews_or_done,
            key=lambda body: (body["status"], body.get("preview")),
        )
        previews = list(dict.fromkeys(b["preview"] for b in bodies if b.get("preview")))
        assert len(previews) >= 2, bodies[-1]
        latest = requests.get(previews[-1], timeout=10)  # while the job still runs (paused)
    assert latest.status_code == 200 and latest.content[:3] == b"\xff\xd8\xff"  # a JPEG
    assert Image.open(io.BytesIO(latest.content)).size == (256, 192)  # the image's shape, 256 px wide
    done = follow(api, job_id)[-1]
    assert done["status"] == "success" and "preview" not in done
    assert requests.get(previews[-1], timeout=10).status_code == 404  # deleted with the job's end
