"""Idempotency-Key (header or body, beyond v3): a retried request gets the original job, charged once."""

from concurrent.futures import ThreadPoolExecutor

import requests

from billing.models import CreditEntry
from generation.models import Job
from tests.conftest import Api, make_account

REQUEST = {"prompt": "once", "width": 64, "height": 64, "num_inference_steps": 1, "instant_response": "yes"}


def reserves(user):
    return CreditEntry.objects.filter(account__user=user, kind="reserve").count()


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
