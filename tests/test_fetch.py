"""POST /api/v3/fetch/{id}: own jobs only, every state, never processing forever."""

from contextlib import contextmanager

import django_rq
from django.db.backends.signals import connection_created
from django.test import Client

from accounts.models import User
from generation.kinds.text2img import Text2ImgParams
from generation.lifecycle import jobs
from generation.models import Job
from tests.conftest import Api, make_account


def queued_job(api) -> dict:
    return api.post(
        "/api/v3/text2img",
        {"prompt": "fetch me", "width": 64, "height": 64, "num_inference_steps": 1, "instant_response": "yes"},
    )


def test_fetch_finished_job_returns_the_success_body(api):
    first = api.post("/api/v3/text2img", {"prompt": "p", "width": 64, "height": 64, "num_inference_steps": 1})
    fetched = api.post(f"/api/v3/fetch/{first['id']}")
    assert fetched == first


def test_request_id_in_body_and_trailing_slash(api):
    first = api.post("/api/v3/text2img", {"prompt": "p", "width": 64, "height": 64, "num_inference_steps": 1})
    assert api.post("/api/v3/fetch", {"request_id": str(first["id"])})["id"] == first["id"]
    assert api.post(f"/api/v3/fetch/{first['id']}/")["id"] == first["id"]


def test_unknown_id(api):
    body = api.post("/api/v3/fetch/987654321")
    assert body == {"status": "error", "message": "Request not found", "messege": "Request not found"}


def test_another_accounts_job_looks_unknown(api, live_server):
    job_id = queued_job(api)["id"]
    _, other_key = make_account("mallory@example.com")
    body = Api(live_server.url, other_key).post(f"/api/v3/fetch/{job_id}")
    assert body == {"status": "error", "message": "Request not found", "messege": "Request not found"}


def test_queued_job_answers_processing(api, account):
    user, _ = account
    # a job on a queue no worker listens to stays queued
    job = jobs.submit(user=user, api_key=None, params=_params(), base_url=api.base_url, queue_name="parked")
    body = api.post(f"/api/v3/fetch/{job.id}")
    assert body["status"] == "processing"
    assert body["messege"] == body["message"] == "Request processing"
    assert body["output"] == [] and isinstance(body["eta"], float) and body["id"] == job.id


def test_job_lost_by_the_queue_is_queued_again(api, account):
    user, _ = account
    job = jobs.submit(user=user, api_key=None, params=_params(), base_url=api.base_url, queue_name="parked")
    queue = django_rq.get_queue("parked")
    queue.connection.delete(f"rq:job:{job.rq_job_id}")  # Redis lost it (restarted without its data)
    Job.objects.filter(pk=job.pk).update(queued_at=job.queued_at.replace(year=2020))
    assert api.post(f"/api/v3/fetch/{job.id}")["status"] == "processing"
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED and job.attempt == 2
    assert job.rq_job_id in queue.get_job_ids()  # someone will run it


def test_a_try_rq_gave_up_on(api, account):
    """Running when RQ gave up (timeout, crash): failed. Never started (its worker lost the database):
    queued again."""
    user, _ = account
    running = jobs.submit(user=user, api_key=None, params=_params(), base_url=api.base_url, queue_name="parked")
    Job.objects.filter(pk=running.pk).update(status=Job.Status.RUNNING)
    django_rq.get_queue("parked").fetch_job(running.rq_job_id).set_status("failed")
    assert api.post(f"/api/v3/fetch/{running.id}") == {
        "status": "failed",
        "id": running.id,
        "message": "Failed, Try Again",
        "messege": "Failed, Try Again",
        "output": [],
    }

    never_started = jobs.submit(user=user, api_key=None, params=_params(), base_url=api.base_url, queue_name="parked")
    django_rq.get_queue("parked").fetch_job(never_started.rq_job_id).set_status("failed")
    Job.objects.filter(pk=never_started.pk).update(queued_at=never_started.queued_at.replace(year=2020))
    assert api.post(f"/api/v3/fetch/{never_started.id}")["status"] == "processing"
    never_started.refresh_from_db()
    assert never_started.attempt == 2 and never_started.status == Job.Status.QUEUED


def _params(**changes) -> Text2ImgParams:
    """A small, fast text2img job's parameters."""
    return Text2ImgParams(**{"prompt": "p", "width": 64, "height": 64, "steps": 1, "seed": 1, **changes})


@contextmanager
def database_queries():
    """Every SQL statement any thread of this process runs meanwhile (the ASGI test server's included):
    each new connection gets a wrapper that notes them (Django's execute_wrapper)."""
    seen = []

    def note(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    def wrap(sender, connection, **kwargs):
        connection.execute_wrappers.append(note)

    connection_created.connect(wrap)
    try:
        yield seen
    finally:
        connection_created.disconnect(wrap)


def test_fetch_of_a_finished_job_costs_no_database_query_after_the_first(api, settings):
    job_id = api.post(
        "/api/v3/text2img", {"prompt": "x", "width": 64, "height": 64, "steps": 1, "instant_response": "yes"}
    )["id"]
    first = api.wait_for(job_id)
    assert first["status"] == "success"
    with database_queries() as queries:
        assert [api.post(f"/api/v3/fetch/{job_id}") for _ in range(3)] == [first] * 3
    assert queries == []
    admin = Client()
    admin.force_login(User.objects.create_superuser(email="root@example.com", password="x"))
    assert admin.post(f"/admin/generation/job/{job_id}/delete/", {"post": "yes"}).status_code == 302
    assert api.post(f"/api/v3/fetch/{job_id}")["message"] == "Request not found"  # not the cached answer
