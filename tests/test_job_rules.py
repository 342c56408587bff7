"""The state machine's rules, in the database alone (no worker, no server): each change happens once,
for the current try only, and credits move with it."""

import pytest

from billing import credits
from billing.models import CreditEntry
from generation import jobs
from generation.models import Job
from tests.conftest import make_account
from tests.test_fetch import _params


@pytest.fixture
def job(db):
    user, _ = make_account("rules@example.com")
    return jobs.submit(user=user, params=_params(samples=2), base_url="http://testserver", queue_name="parked")


def ledger(job):
    return sorted(CreditEntry.objects.filter(job=job).values_list("kind", "amount"))


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
