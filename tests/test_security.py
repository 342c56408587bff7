"""Security checks as tests: keys never stored or shown in clear, accounts isolated (also against id
brute force), CSRF on every state-changing page, rate limits, unguessable files, headers, DEBUG off,
and a clean `check --deploy` with production settings."""

import json
import logging
import secrets
import subprocess
import sys
import uuid

import pytest
import requests
from django.apps import apps
from django.core import serializers
from django.test import Client

from accounts.models import ApiKey, User
from generation.lifecycle import jobs
from generation.models import Job
from tests.conftest import ROOT, Api, download, make_account, worker_environment
from tests.test_fetch import _params

TINY = {"prompt": "secret lighthouse", "width": 64, "height": 64, "num_inference_steps": 1}


def test_api_keys_never_appear_in_clear(api, account, caplog):
    user, key = account
    caplog.set_level(logging.DEBUG)
    api.post("/api/v3/text2img", TINY)
    api.post("/api/v3/text2img", {"prompt": ""})  # a validation error is logged too
    requests.post(api.base_url + "/api/v3/fetch/1", headers={"Authorization": f"Bearer {key}"}, timeout=10)

    # the database: every row of every model, serialized
    dump = "".join(
        serializers.serialize("json", model.objects.all()) for model in apps.get_models() if model._meta.managed
    )
    assert key not in dump and key[12:] not in dump
    # the logs of this process (web) and of the worker
    assert key not in caplog.text
    assert key not in (ROOT / "var" / "test-worker.log").read_text(errors="replace")
    # the admin
    admin = Client()
    admin.force_login(User.objects.create_superuser(email="root@example.com", password="x"))
    api_key = ApiKey.objects.get(user=user)
    for page in (
        "/admin/accounts/apikey/",
        f"/admin/accounts/apikey/{api_key.pk}/change/",
        f"/admin/accounts/user/{user.pk}/change/",
        "/admin/generation/job/",
    ):
        html = admin.get(page).content.decode()
        assert key not in html and key[12:] not in html, page


def test_ids_of_another_account_cannot_be_fetched_canceled_or_viewed(api, account, live_server):
    user, _ = account
    mine = [api.post("/api/v3/text2img", TINY)["id"]]
    mine += [jobs.submit(user=user, params=_params(), base_url=api.base_url, queue_name="parked").id for _ in range(3)]
    mallory_user, mallory_key = make_account("mallory@example.com")
    mallory = Api(live_server.url, mallory_key)
    not_found = {"status": "error", "message": "Request not found", "messege": "Request not found"}
    every_id = Job.objects.values_list("id", flat=True)  # every id there is, and some that are not yet
    for job_id in [*every_id, *range(max(mine) + 1, max(mine) + 20)]:
        assert mallory.post(f"/api/v3/fetch/{job_id}") == not_found
        assert mallory.post("/api/v3/fetch", {"request_id": job_id}) == not_found
        assert mallory.post(f"/api/v3/cancel/{job_id}") == not_found
    assert Job.objects.filter(pk__in=mine[1:], status="queued").count() == 3
    browser = Client()
    browser.force_login(mallory_user)
    for job_id in mine:
        assert browser.get(f"/dashboard/jobs/{job_id}/").status_code == 404
        assert browser.get(f"/dashboard/jobs/{job_id}/status.json").status_code == 404
        assert browser.post(f"/dashboard/jobs/{job_id}/cancel/").status_code == 404


def test_output_names_are_unguessable_and_unlisted(api):
    first = api.post("/api/v3/text2img", {**TINY, "samples": 2})
    second = api.post("/api/v3/text2img", TINY)
    prefixes = [first["meta"]["file_prefix"], second["meta"]["file_prefix"]]
    assert all(uuid.UUID(prefix).version == 4 for prefix in prefixes) and prefixes[0] != prefixes[1]
    assert first["output"][0].endswith(f"{prefixes[0]}-0.png")
    download(first["output"][0])
    # through the app's own media view (the test live server serves media itself, before the app)
    client = Client()
    name = first["output"][0].split("/media/", 1)[1]
    assert client.get("/media/" + name).status_code == 200
    for path in (
        "/media/generations/",
        "/media/",
        "/media/../config/settings.py",
        "/media/%2e%2e/manage.py",
        "/media/generations/..%2f..%2fmanage.py",
        f"/media/generations/{uuid.uuid4()}-0.png",
    ):
        assert client.get(path).status_code == 404, path


STATE_CHANGING = [
    "/dashboard/keys/",
    "/dashboard/keys/1/revoke/",
    "/dashboard/playground/run/",
    "/dashboard/webhook/",
    "/dashboard/jobs/1/cancel/",
    "/billing/plan/free/",
    "/billing/portal/",
    "/accounts/logout/",
    "/accounts/password/change/",
    "/accounts/email/",
    "/admin/accounts/apikey/1/delete/",
    "/admin/billing/account/1/change/",
]


@pytest.mark.parametrize("path", STATE_CHANGING)
def test_every_state_changing_page_needs_csrf(path, transactional_db):
    user = User.objects.create_superuser(email="csrf@example.com", password="x")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(path, {"name": "x"}).status_code == 403


@pytest.mark.parametrize("path", ["/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"])
def test_anonymous_forms_need_csrf(path, transactional_db):
    response = Client(enforce_csrf_checks=True).post(
        path, {"login": "a@example.com", "password": "x", "email": "a@example.com"}
    )
    assert response.status_code == 403


def test_key_creation_is_rate_limited(transactional_db, settings):
    settings.KEY_CREATIONS_PER_HOUR = 3
    user = User.objects.create_user(email=f"{secrets.token_hex(4)}@example.com", password="x")
    client = Client()
    client.force_login(user)
    statuses = [client.post("/dashboard/keys/", {"name": f"k{i}"}).status_code for i in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    assert "At most 3 keys can be created an hour." in client.post("/dashboard/keys/").content.decode()
    assert ApiKey.objects.filter(user=user).count() == 3


def test_active_keys_are_limited_and_a_revoked_one_makes_room(transactional_db, settings):
    settings.MAX_ACTIVE_KEYS = 2
    user = User.objects.create_user(email=f"{secrets.token_hex(4)}@example.com", password="x")
    client = Client()
    client.force_login(user)
    assert [client.post("/dashboard/keys/", {"name": f"k{i}"}).status_code for i in range(3)] == [200, 200, 429]
    assert "At most 2 keys can be active; revoke one first." in client.post("/dashboard/keys/").content.decode()
    first = ApiKey.objects.filter(user=user).first()
    assert client.post(f"/dashboard/keys/{first.pk}/revoke/").status_code == 302
    assert client.post("/dashboard/keys/", {"name": "again"}).status_code == 200
    assert ApiKey.objects.filter(user=user, revoked=False).count() == 2


def test_security_headers(live_server, settings):
    page = requests.get(live_server.url + "/", timeout=10)
    api = requests.post(live_server.url + "/api/v3/system_load", json={}, timeout=10)
    for response in (page, api):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert "Strict-Transport-Security" not in response.headers  # plain http: no HSTS
    policy = dict(part.strip().split(" ", 1) for part in page.headers["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == policy["style-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'" and "https://checkout.stripe.com" in policy["form-action"]
    # behind a TLS proxy (HTTPS=true), on a fresh handler that reads these settings
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 31536000
    secure = Client(HTTP_X_FORWARDED_PROTO="https").get("/")
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


def settings_in_a_fresh_process(**env) -> dict:
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({'DEBUG': s.DEBUG, 'HTTPS': s.HTTPS, 'SECURE_SSL_REDIRECT': s.SECURE_SSL_REDIRECT}))"
    )
    environment = worker_environment(**{"DJANGO_SETTINGS_MODULE": "config.settings", **env})
    if "DEBUG" not in env:
        environment.pop("DEBUG", None)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_debug_is_off_unless_asked_for():
    assert settings_in_a_fresh_process()["DEBUG"] is False
    assert settings_in_a_fresh_process(DEBUG="true")["DEBUG"] is True


def test_check_deploy_is_clean_with_production_settings():
    production = {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "api.example.com",
        "HTTPS": "true",
    }
    environment = worker_environment(**{**production, "DJANGO_SETTINGS_MODULE": "config.settings"})
    environment.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set by the browser tests for Playwright only
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
    assert settings_in_a_fresh_process(**production)["SECURE_SSL_REDIRECT"] is True
