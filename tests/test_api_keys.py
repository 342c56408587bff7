"""API keys: stored hashed, shown once, created from the command line."""

import subprocess
import sys

from django.core.management import call_command

from accounts.keys import authenticate_key, create_api_key
from accounts.models import ApiKey, User
from billing import credits
from billing.models import Account, Plan
from tests.conftest import ROOT, worker_environment


def test_key_is_stored_hashed(db):
    user = User.objects.create_user(email="k@example.com")
    api_key, raw_key = create_api_key(user, name="laptop")
    stored = ApiKey.objects.values().get(pk=api_key.pk)
    assert raw_key not in str(stored)
    assert raw_key.startswith(stored["prefix"])
    assert authenticate_key(raw_key).pk == api_key.pk
    assert authenticate_key(raw_key[:-1] + ("a" if raw_key[-1] != "a" else "b")) is None


def test_a_key_brings_its_user_account_and_plan_as_stored(db):
    user = User.objects.create_user(email="k@example.com", first_name="Ada")
    _, raw_key = create_api_key(user)
    pro = Plan.objects.create(slug="pro", name="Pro", monthly_credits=5000, max_queued_jobs=7, requests_per_minute=90)
    Account.objects.filter(user=user).update(plan=pro, balance=321)

    api_key = authenticate_key(raw_key)
    assert (api_key.user.email, api_key.user.first_name, api_key.user.is_active) == ("k@example.com", "Ada", True)
    assert api_key.user.date_joined == User.objects.get(pk=user.pk).date_joined
    account = api_key.user.billing
    assert (account.balance, account.plan.name, account.plan.max_queued_jobs) == (321, "Pro", 7)

    user.is_active = False  # saved: the key cached by the first use is forgotten at once
    user.save()
    assert authenticate_key(raw_key) is None


def test_a_user_without_an_account_yet_gets_one_on_first_use(db):
    user = User.objects.create_user(email="k@example.com")
    _, raw_key = create_api_key(user)
    Account.objects.filter(user=user).delete()

    api_key = authenticate_key(raw_key)
    assert api_key is not None
    assert credits.account_for(api_key.user, loaded=True).plan == credits.default_plan()


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
        cwd=ROOT,
        env=worker_environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    raw_key = result.stdout.strip().splitlines()[-1]
    api_key = authenticate_key(raw_key)
    assert api_key is not None and api_key.user.email == "cli@example.com" and api_key.name == "ci"

    call_command("createapikey", "cli@example.com")  # an existing user gets a second key
    assert User.objects.filter(email="cli@example.com").count() == 1
    assert ApiKey.objects.filter(user__email="cli@example.com").count() == 2
