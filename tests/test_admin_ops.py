"""Admin: the queue-load page, the gallery, deleting a job with its files, and retention."""

import io
from datetime import timedelta

import pytest
import requests
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from accounts.models import User
from generation.lifecycle import jobs
from generation.models import Job
from generation.queueing import liveness
from tests.conftest import make_account
from tests.test_fetch import _params

REQUEST = {"prompt": "a lighthouse", "width": 64, "height": 64, "num_inference_steps": 1}


@pytest.fixture
def admin_client(transactional_db):
    client = Client()
    client.force_login(User.objects.create_superuser(email="root@example.com", password="x"))
    return client


@pytest.fixture
def finished(api):
    """Two finished jobs of the test account (text2img and a 2-image batch)."""
    first = api.post("/api/v3/text2img", REQUEST)
    second = api.post("/api/v3/text2img", {**REQUEST, "samples": 2, "prompt": "boats"})
    assert first["status"] == second["status"] == "success"
    return Job.objects.get(pk=first["id"]), Job.objects.get(pk=second["id"])


def test_queue_page_shows_queues_workers_and_throughput(admin_client, finished, account, api):
    user, _ = account
    jobs.submit(user=user, params=_params(), base_url=api.base_url, queue_name="parked")
    response = admin_client.get("/admin/generation/job/queue/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<meta http-equiv="refresh"' in html
    overview = response.context["overview"]
    assert [q["name"] for q in overview["queues"]] == ["high", "default", "low"]
    assert overview["succeeded_last_hour"] >= 2 and overview["mean_generation_time"] > 0
    assert overview["queued"] == 1  # the parked job
    worker = overview["workers"][0]
    assert worker["model"] == "tiny-sdxl" and worker["device"] == "cpu"
    assert 0 <= worker["heartbeat_age"] < liveness.ttl()  # else its heartbeat would have lapsed
    assert worker["queues"] == ["high", "default", "low"]
    assert overview["eta_new_job"] >= 0 and all(queue["wait"] >= 0 for queue in overview["queues"])
    assert 'id="throughput">' in html and "/admin/django-rq/" in html
    assert admin_client.get("/admin/django-rq/").status_code == 200
    assert "Queue load" in admin_client.get("/admin/").content.decode()


def test_queue_page_is_for_staff_only(finished, client):
    assert client.get("/admin/generation/job/queue/").status_code == 302
    user, _ = make_account("nosy@example.com")
    client.force_login(user)
    assert client.get("/admin/generation/job/queue/").status_code == 302
    assert client.get("/admin/generation/job/gallery/").status_code == 302


def test_gallery_filters_and_opens_a_job(admin_client, finished):
    first, second = finished
    page = admin_client.get("/admin/generation/job/gallery/")
    html = page.content.decode()
    assert first.thumbnail_url in html and second.thumbnail_url in html
    assert "3 images from 2 jobs." in html  # every image of the 2-image job is shown
    assert default_storage.url(second.output_names[1]) in html and f"#{second.id} (2/2)" in html
    assert "Users and API keys" in admin_client.get("/admin/").content.decode()  # not a second "Accounts"
    assert requests.get(first.base_url + first.thumbnail_url, timeout=10).status_code == 200
    only_boats = admin_client.get(
        "/admin/generation/job/gallery/", {"user": "alice@", "kind": "text2img", "status": "success"}
    )
    assert second.thumbnail_url in only_boats.content.decode()
    nobody = admin_client.get("/admin/generation/job/gallery/", {"user": "nobody@example.com"}).content.decode()
    assert first.thumbnail_url not in nobody and "No images match." in nobody
    future = (timezone.now() + timedelta(days=2)).date().isoformat()
    assert "No images match." in admin_client.get("/admin/generation/job/gallery/", {"since": future}).content.decode()
    detail = admin_client.get(f"/admin/generation/job/{second.id}/change/")
    assert detail.status_code == 200 and second.output_names[1].split("/")[-1] in detail.content.decode()


def test_deleting_a_job_deletes_its_files(admin_client, finished):
    _, batch = finished
    names = list(batch.output_names) + [batch.thumbnail_name]
    assert all(default_storage.exists(name) for name in names)
    response = admin_client.post(f"/admin/generation/job/{batch.id}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Job.objects.filter(pk=batch.id).exists()
    assert not any(default_storage.exists(name) for name in names)


def test_retention_deletes_old_outputs_and_marks_jobs_expired(finished, api):
    old, recent = finished
    Job.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=31))
    url = api.post(f"/api/v3/fetch/{old.id}")["output"][0]
    assert requests.get(url, timeout=10).status_code == 200

    out = io.StringIO()
    call_command("expire_outputs", "--days", "30", stdout=out)
    assert "Expired 1 job" in out.getvalue()
    old.refresh_from_db()
    assert old.expired_at is not None and not default_storage.exists(old.output_names[0])
    assert requests.get(url, timeout=10).status_code == 404
    body = api.post(f"/api/v3/fetch/{old.id}")
    assert body["status"] == "error" and body["message"].startswith("Request expired") and body["id"] == old.id
    assert api.post(f"/api/v3/fetch/{recent.id}")["status"] == "success"
