"""Idempotency-Key (header or body, beyond v3): a retried request gets the original job, charged once."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import requests
from django.utils import timezone

from billing.models import CreditEntry
from generation.lifecycle import jobs
from generation.models import Job
from tests.conftest import Api, make_account, waiters
from tests.test_fetch import _params
from tests.test_recovery import wait_until

REQUEST = {"prompt": "once", "width": 64, "height": 64, "num_inference_steps": 1, "instant_response": "yes"}


def reserves(user):
    return CreditEntry.objects.filter(account__user=user, entry_type="reserve").count()


def test_same_key_twice_gives_one_job_and_one_charge(api, account):
    user, _ = account
    first = api.post("/api/v3/text2img", {**REQUEST, "idempotency_key": "order-1"})
    again = api.post_raw("/api/v3/text2img", json={"key": api.key, **REQUEST, "idempotency_key": "order-1"})
    assert again.json()["id"] == first["id"] and again.headers["Idempotent-Replayed"] == "true"
    assert Job.objects.filter(user=user).count() == 1 and reserves(user) == 1
    other = api.post("/api/v3/text2img", {**REQUEST, "idempotency_key": "order-2"})
    assert other["id"] != first["id"]


def test_header_key_and_the_finished_result(api, account):
    user, _ = account
    headers = {"Idempotency-Key": "retry-me"}
    first = api.post("/api/v3/text2img", {**REQUEST, "instant_response": "no"}, headers=headers)
    assert first["status"] == "success"
    again = api.post("/api/v3/text2img", {**REQUEST, "instant_response": "no"}, headers=headers)
    assert again == first
    assert reserves(user) == 1


def test_two_concurrent_requests_with_one_key(api, account):
    user, _ = account
    url = api.base_url + "/api/v3/text2img"

    def post(_):
        return requests.post(
            url, json={"key": api.key, **REQUEST}, headers={"Idempotency-Key": "race"}, timeout=30
        ).json()

    with ThreadPoolExecutor(max_workers=2) as pool:
        bodies = list(pool.map(post, range(2)))
    assert bodies[0]["id"] == bodies[1]["id"]
    assert Job.objects.filter(user=user).count() == 1 and reserves(user) == 1


def test_keys_are_scoped_to_the_account(api, account, live_server):
    mine = api.post("/api/v3/text2img", {**REQUEST, "idempotency_key": "shared"})
    _, other_key = make_account("bob@example.com")
    theirs = Api(live_server.url, other_key).post("/api/v3/text2img", {**REQUEST, "idempotency_key": "shared"})
    assert theirs["id"] != mine["id"]


def test_every_request_waiting_on_one_job_gets_its_result(api, account):
    """Twenty waiting requests with one Idempotency-Key: each wakes when the job finishes (not only the
    first), within the wait; the job is made and charged once."""
    user, _ = account
    job = jobs.submit(
        user=user, params=_params(), base_url=api.base_url, queue_name="parked", idempotency_key="many-waiters"
    )
    body = {**REQUEST, "instant_response": "no"}

    def wait_for_it():
        response = requests.post(
            api.base_url + "/api/v3/text2img",
            json={"key": api.key, **body},
            headers={"Idempotency-Key": "many-waiters"},
            timeout=60,
        )
        return response.json()["status"]

    with ThreadPoolExecutor(max_workers=20) as pool:
        waiting = [pool.submit(wait_for_it) for _ in range(20)]
        wait_until(lambda: waiters(job.id) == 20)  # all waiting (the job is parked: no worker runs it)
        running = jobs.start(job.id, job.attempt, "test")
        assert jobs.succeed(running, [job.output_name(0)], generation_time=0.1, seeds=[1])
        statuses = [future.result() for future in waiting]
    assert statuses == ["success"] * 20  # woken by the job's end (their wait is GENERATION_WAIT_SECONDS)
    assert Job.objects.filter(user=user).count() == 1 and reserves(user) == 1


def test_a_key_reused_for_a_different_request_is_an_error_that_says_so(api, account, http_server, image_url):
    user, _ = account
    first = api.post("/api/v3/text2img", REQUEST, headers={"Idempotency-Key": "reused"})
    assert api.post("/api/v3/text2img", REQUEST, headers={"Idempotency-Key": "reused"})["id"] == first["id"]
    for path, body in (
        ("/api/v3/text2img", {**REQUEST, "prompt": "another prompt"}),
        ("/api/v3/text2img", {**REQUEST, "samples": 2}),
        ("/api/v3/super_resolution", {"url": image_url, "instant_response": "yes"}),
    ):
        refused = api.post(path, body, headers={"Idempotency-Key": "reused"})
        assert refused["status"] == "error" and refused["message"].startswith("Idempotency-Key already used"), path
    assert Job.objects.filter(user=user).count() == 1 and reserves(user) == 1


def test_a_key_is_given_up_after_24_hours(api, account):
    user, _ = account
    first = api.post("/api/v3/text2img", REQUEST, headers={"Idempotency-Key": "daily"})
    Job.objects.filter(pk=first["id"]).update(queued_at=timezone.now() - timedelta(hours=24, minutes=1))
    again = api.post_raw("/api/v3/text2img", json={"key": api.key, **REQUEST}, headers={"Idempotency-Key": "daily"})
    assert again.json()["id"] != first["id"] and "Idempotent-Replayed" not in again.headers  # a new job
    assert Job.objects.get(pk=first["id"]).idempotency_key == ""  # the old one let the key go
    assert reserves(user) == 2
