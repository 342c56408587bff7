"""API keys: stored hashed, shown once, created from the command line."""

import subprocess
import sys

from django.core.management import call_command

from accounts.keys import authenticate_key, create_api_key
from accounts.models import ApiKey, User
from tests.conftest import ROOT, worker_environment


def test_key_is_stored_hashed(db):
    user = User.objects.create_user(email="k@example.com")
    api_key, raw_key = create_api_key(user, name="laptop")
    stored = ApiKey.objects.values().get(pk=api_key.pk)
    assert raw_key not in str(stored)
    assert raw_key.startswith(stored["prefix"])
    assert authenticate_key(raw_key).pk == api_key.pk
    assert authenticate_key(raw_key[:-1] + ("a" if raw_key[-1] != "a" else "b")) is None


def test_last_used_is_recorded(db):
    user = User.objects.create_user(email="k@example.com")
    api_key, raw_key = create_api_key(user)
    assert api_key.last_used_at is None
    authenticate_key(raw_key)
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_createapikey_prints_a_working_key_on_its_last_line(transactional_db):
    result = subprocess.run(
        [sys.executable, "manage.py", "createapikey", "cli@example.com", "--name", "ci"],
        cwd=ROOT, env=worker_environment(), capture_output=True, text=True, check=True,
    )
    raw_key = result.stdout.strip().splitlines()[-1]
    api_key = authenticate_key(raw_key)
    assert api_key is not None and api_key.user.email == "cli@example.com" and api_key.name == "ci"

    call_command("createapikey", "cli@example.com")  # an existing user gets a second key
    assert User.objects.filter(email="cli@example.com").count() == 1
    assert ApiKey.objects.filter(user__email="cli@example.com").count() == 2
