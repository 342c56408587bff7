"""The state machine's rules, in the database alone (no worker, no server): each change happens once,
for the current try only, and credits move with it."""

import random

import pytest
from django.test import Client

from billing import credits
from billing.models import Account, CreditEntry
from generation.lifecycle import jobs
from generation.models import Job
from tests.conftest import make_account
from tests.test_fetch import _params


@pytest.fixture
def job(db):
    user, _ = make_account("rules@example.com")
    return jobs.submit(user=user, params=_params(samples=2), base_url="http://testserver", queue_name="parked")


def ledger(job):
    return sorted(CreditEntry.objects.filter(job=job).values_list("entry_type", "amount"))


def balance(job):
    account = credits.account_for(job.user)
    assert account.balance == credits.ledger_total(account)
    return account.balance


def test_a_submitted_job_is_queued_with_its_credits_reserved(job):
    assert job.status == Job.Status.QUEUED and job.kind == "text2img"
    assert job.parameters == _params(samples=2)
    assert ledger(job) == [("reserve", -2)]


def test_a_try_starts_once(job):
    assert jobs.start(job.id, job.attempt, "w1").status == Job.Status.RUNNING
    assert jobs.start(job.id, job.attempt, "w2") is None


def test_success_charges_and_records_the_results(job):
    before = balance(job)
    running = jobs.start(job.id, job.attempt, "w1")
    assert jobs.succeed(running, ["a.png", "b.png"], generation_time=1.0, seeds=[1, 2], steps=1)
    job.refresh_from_db()
    assert (job.status, job.seeds, job.output_names) == (Job.Status.SUCCESS, [1, 2], ["a.png", "b.png"])
    assert ledger(job) == [("charge", 0), ("reserve", -2)]
    assert balance(job) == before
    assert not jobs.fail(job.id, "late failure")  # a finished job stays finished


def test_failure_refunds_once(job):
    before = balance(job)
    assert jobs.fail(job.id, "broken")
    assert not jobs.fail(job.id, "broken again")
    assert ledger(job) == [("refund", 2), ("reserve", -2)]
    assert balance(job) == before + 2


def test_a_stale_try_cannot_finish_a_requeued_job(job):
    running = jobs.start(job.id, job.attempt, "w1")
    assert jobs.retry_or_fail(running, "worker lost")
    job.refresh_from_db()
    assert (job.status, job.attempt) == (Job.Status.QUEUED, 2)
    assert not jobs.succeed(running, ["a.png"], generation_time=1.0, seeds=[1])
    assert not jobs.fail(job.id, "stale", attempt=1)


def test_a_job_out_of_tries_fails_with_a_refund(job, settings):
    settings.JOB_MAX_RUNS = 1
    running = jobs.start(job.id, job.attempt, "w1")
    assert jobs.retry_or_fail(running, "worker lost")
    job.refresh_from_db()
    assert (job.status, job.error) == (Job.Status.FAILED, jobs.WORKER_LOST_MESSAGE)
    assert ("refund", 2) in ledger(job)


def test_cancel_refunds_and_is_idempotent(job):
    assert jobs.cancel(job).status == Job.Status.CANCELED
    assert jobs.cancel(job).status == Job.Status.CANCELED
    assert ledger(job) == [("refund", 2), ("reserve", -2)]


def test_a_refund_restores_the_balance_even_when_the_slot_count_is_already_zero(job):
    before = balance(job)
    Account.objects.filter(user=job.user).update(unfinished_jobs=0)  # the count drifted (an old bug, a manual fix)
    assert jobs.fail(job.id, "broken")
    assert balance(job) == before + 2
    assert Account.objects.get(user=job.user).unfinished_jobs == 0


def _admin(user_model):
    client = Client()
    client.force_login(user_model.objects.create_superuser(email="root@example.com", password="x"))
    return client


def test_deleting_an_unfinished_job_in_the_admin_refunds_it_and_frees_its_slot(job):
    before = balance(job)
    response = _admin(type(job.user)).post(f"/admin/generation/job/{job.id}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not Job.objects.filter(pk=job.id).exists()
    account = Account.objects.get(user=job.user)
    assert account.balance == before + 2 == credits.ledger_total(account) and account.unfinished_jobs == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_balance_equals_the_ledger_after_any_sequence_of_operations(db, seed):
    """A property test: random sequences of submit, start, succeed, fail, cancel, lose a worker and admin
    deletions; after each step the balance equals the ledger sum and the slot count the unfinished jobs."""
    rng = random.Random(seed)
    user, _ = make_account(f"sequence{seed}@example.com")
    admin = _admin(type(user))
    made = []
    for _ in range(60):
        operation = rng.choice(["submit", "submit", "start", "succeed", "fail", "cancel", "lose", "delete"])
        queued = [j for j in Job.objects.filter(user=user, status=Job.Status.QUEUED)]
        running = [j for j in Job.objects.filter(user=user, status=Job.Status.RUNNING)]
        any_job = list(Job.objects.filter(user=user))
        if operation == "submit":
            try:
                made.append(
                    jobs.submit(
                        user=user, params=_params(samples=rng.randint(1, 4)), base_url="http://t", queue_name="parked"
                    )
                )
            except (credits.QueueFull, credits.InsufficientCredits):
                pass
        elif operation == "start" and queued:
            chosen = rng.choice(queued)
            jobs.start(chosen.id, chosen.attempt, "w")
        elif operation == "succeed" and running:
            jobs.succeed(rng.choice(running), ["a.png"], generation_time=0.1, seeds=[1])
        elif operation == "fail" and any_job:
            jobs.fail(rng.choice(any_job).id, "broken")
        elif operation == "cancel" and any_job:
            jobs.cancel(rng.choice(any_job))
        elif operation == "lose" and running:
            jobs.retry_or_fail(rng.choice(running), "worker lost")
        elif operation == "delete" and any_job:
            admin.post(f"/admin/generation/job/{rng.choice(any_job).id}/delete/", {"post": "yes"})
        account = Account.objects.get(user=user)
        assert account.balance == credits.ledger_total(account) >= 0
        unfinished = Job.objects.filter(user=user, status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).count()
        assert account.unfinished_jobs == unfinished, operation
