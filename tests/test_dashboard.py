"""Dashboard pages: sign-in required, CSRF enforced, and every view scoped to its own user."""

import json

import pytest
from django.test import Client

from accounts.keys import authenticate_key
from accounts.models import ApiKey
from generation.lifecycle import jobs
from generation.models import Job
from tests.conftest import make_account
from tests.test_fetch import _params

PAGES = ["dashboard", "keys/", "history/", "playground/", "webhook/"]


@pytest.fixture
def alice(transactional_db):
    user, key = make_account("alice@example.com")
    client = Client()
    client.force_login(user)
    return user, key, client


@pytest.fixture
def bob(transactional_db):
    user, key = make_account("bob@example.com")
    job = jobs.submit(
        user=user, params=_params(prompt="bob's secret prompt"), base_url="http://testserver", queue_name="parked"
    )
    return user, key, job


@pytest.mark.parametrize("page", PAGES)
def test_pages_need_a_login(client, db, page):
    response = client.get("/dashboard/" + ("" if page == "dashboard" else page))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("page", PAGES)
def test_pages_render_for_the_owner_only(alice, bob, page):
    _, _, client = alice
    response = client.get("/dashboard/" + ("" if page == "dashboard" else page))
    assert response.status_code == 200
    html = response.content.decode()
    assert "bob's secret prompt" not in html and "bob&#x27;s secret prompt" not in html
    assert bob[0].webhook_secret not in html
    assert bob[1][:12] not in html


def test_history_and_job_pages_show_own_jobs_only(alice, bob):
    user, _, client = alice
    mine = jobs.submit(
        user=user, params=_params(prompt="alice's lighthouse"), base_url="http://testserver", queue_name="parked"
    )
    history = client.get("/dashboard/history/").content.decode()
    assert "alice&#x27;s lighthouse" in history and "bob&#x27;s secret prompt" not in history
    assert client.get(f"/dashboard/jobs/{mine.id}/").status_code == 200
    assert client.get(f"/dashboard/jobs/{bob[2].id}/").status_code == 404
    assert client.get(f"/dashboard/jobs/{bob[2].id}/status.json").status_code == 404
    status = client.get(f"/dashboard/jobs/{mine.id}/status.json").json()
    assert status["status"] == "queued" and status["queue_position"] == 1  # bob's parked job is ahead


def test_cancel_from_the_job_page(alice, bob):
    user, _, client = alice
    mine = jobs.submit(user=user, params=_params(), base_url="http://testserver", queue_name="parked")
    assert 'id="job-cancel"' in client.get(f"/dashboard/jobs/{mine.id}/").content.decode()
    assert client.post(f"/dashboard/jobs/{bob[2].id}/cancel/").status_code == 404
    bob[2].refresh_from_db()
    assert bob[2].status == Job.Status.QUEUED
    page = client.post(f"/dashboard/jobs/{mine.id}/cancel/", follow=True).content.decode()
    assert "canceled; its credits were refunded" in page and 'id="job-cancel"' not in page
    assert client.get(f"/dashboard/jobs/{mine.id}/status.json").json()["status"] == "canceled"
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(user)
    assert csrf_client.post(f"/dashboard/jobs/{mine.id}/cancel/").status_code == 403


def test_history_is_paginated_newest_first(alice):
    user, _, client = alice
    created = [
        jobs.submit(user=user, params=_params(), base_url="http://testserver", queue_name="parked") for _ in range(3)
    ]
    Job.objects.filter(user=user).update(status=Job.Status.FAILED)  # past the queued-jobs cap
    for _ in range(20):
        created.append(
            Job.objects.create(
                user=user,
                kind="text2img",
                params=_params().to_dict(),
                seed=1,
                base_url="http://testserver",
                status=Job.Status.FAILED,
            )
        )
    first = client.get("/dashboard/history/").content.decode()
    assert f"#{created[-1].id}<" in first and f"#{created[0].id}<" not in first
    assert f"#{created[0].id}<" in client.get("/dashboard/history/?page=2").content.decode()


def test_create_key_shows_it_once(alice):
    user, _, client = alice
    response = client.post("/dashboard/keys/", {"name": "laptop"})
    html = response.content.decode()
    key = html.split('id="new-key" class="key">')[1].split("<")[0]
    assert authenticate_key(key).user == user
    again = client.get("/dashboard/keys/").content.decode()
    assert key not in again and key[:12] in again and "laptop" in again


def test_revoke_own_key_and_not_anothers(alice, bob):
    user, key, client = alice
    mine = ApiKey.objects.get(user=user)
    assert client.post(f"/dashboard/keys/{mine.id}/revoke/").status_code == 302
    assert authenticate_key(key) is None
    theirs = ApiKey.objects.get(user=bob[0])
    assert client.post(f"/dashboard/keys/{theirs.id}/revoke/").status_code == 404
    assert authenticate_key(bob[1]) is not None
    assert client.get(f"/dashboard/keys/{mine.id}/revoke/").status_code == 405


def test_rotate_webhook_secret(alice):
    user, _, client = alice
    old = user.webhook_secret
    client.post("/dashboard/webhook/")
    user.refresh_from_db()
    assert user.webhook_secret != old and user.webhook_secret in client.get("/dashboard/webhook/").content.decode()


def test_playground_runs_through_the_api_serializers(alice):
    user, _, client = alice
    answer = client.post(
        "/dashboard/playground/run/",
        json.dumps({"operation": "text2img", "prompt": "x", "width": "100"}),
        content_type="application/json",
    ).json()
    assert answer["status"] == "queued"
    job = Job.objects.get(pk=answer["id"], user=user)
    assert job.params["width"] == 96 and job.api_key is None

    invalid = client.post(
        "/dashboard/playground/run/",
        json.dumps({"operation": "text2img", "width": 64}),
        content_type="application/json",
    ).json()
    assert invalid["message"] == {"prompt": ["The prompt field is required."]}


def test_state_changing_pages_need_csrf(alice):
    user, _, _ = alice
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post("/dashboard/keys/", {"name": "x"}).status_code == 403
    assert strict.post("/dashboard/webhook/").status_code == 403
    assert strict.post("/dashboard/playground/run/", "{}", content_type="application/json").status_code == 403


def test_sign_up_and_log_in(client, db):
    response = client.post(
        "/accounts/signup/",
        {"email": "new@example.com", "password1": "a-long-passphrase-42", "password2": "a-long-passphrase-42"},
    )
    assert response.status_code == 302
    assert client.get("/dashboard/").status_code == 200
    client.logout()
    assert (
        client.post("/accounts/login/", {"login": "new@example.com", "password": "a-long-passphrase-42"}).status_code
        == 302
    )


def test_failed_log_ins_are_rate_limited(client, db):
    from django.core.cache import cache

    cache.clear()
    make_account("victim@example.com")
    for attempt in range(6):
        client.post("/accounts/login/", {"login": "victim@example.com", "password": f"wrong-{attempt}"})
    # now even the right password is refused for a while
    response = client.post("/accounts/login/", {"login": "victim@example.com", "password": "correct horse battery"})
    assert response.status_code in (200, 429)
    assert "Too many failed login attempts" in response.content.decode()
    assert client.get("/dashboard/").status_code == 302
    cache.clear()
