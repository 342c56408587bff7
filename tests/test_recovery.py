"""Crash recovery: a worker killed with SIGKILL mid-job, graceful and cold shutdown. No job is left
running, and credits are charged once or refunded."""

import signal
import time

import django_rq
import pytest

from billing.credits import account_for, ledger_total
from billing.models import CreditEntry
from generation import jobs, liveness
from generation.models import Job
from tests.conftest import start_worker, stop_worker
from tests.test_fetch import _params

SLOW = _params(width=256, height=256, steps=50)  # several seconds on a CPU


def wait_until(predicate, timeout=60, interval=0.1):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(interval)


def fresh(job):
    job.refresh_from_db()
    return job


@pytest.fixture
def spare_queue(worker):
    """The "isolated" queue, served only by the workers a test starts; emptied afterwards."""
    queue = django_rq.get_queue("isolated")
    queue.empty()
    yield queue
    queue.empty()


def running_job(user, api):
    job = jobs.submit(user=user, params=SLOW, base_url=api.base_url, queue_name="isolated")
    wait_until(lambda: fresh(job).status == Job.Status.RUNNING and job.progress_step >= 1)
    return job


def entries(job):
    return sorted(CreditEntry.objects.filter(job=job).values_list("kind", flat=True))


def test_killed_worker_job_is_requeued_and_finished_by_another(api, account, spare_queue):
    user, _ = account
    balance = account_for(user).balance
    doomed = start_worker("doomed", queues=["isolated"])
    job = running_job(user, api)
    assert job.worker_name in liveness.live_workers()
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()

    # the periodic sweep on the other worker notices the heartbeat is gone and re-queues it
    wait_until(lambda: fresh(job).attempt == 2 and job.rq_job_id in spare_queue.get_job_ids(), timeout=30)
    assert job.status == Job.Status.QUEUED
    assert api.post(f"/api/v3/fetch/{job.id}")["status"] == "processing"

    rescuer = start_worker("rescuer", queues=["isolated"])
    try:
        body = api.wait_for(job.id, timeout=120)
    finally:
        stop_worker(rescuer)
    assert body["status"] == "success" and len(body["output"]) == 1
    assert fresh(job).runs == 2
    assert entries(job) == ["charge", "reserve"]
    assert account_for(user).balance == balance - 1 == ledger_total(account_for(user))


def test_job_out_of_tries_fails_and_is_refunded(api, account, spare_queue):
    user, _ = account
    balance = account_for(user).balance
    doomed = start_worker("doomed", queues=["isolated"])
    job = running_job(user, api)
    Job.objects.filter(pk=job.pk).update(runs=2)  # it was already started twice before
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()

    wait_until(lambda: fresh(job).status == Job.Status.FAILED, timeout=30)
    body = api.post(f"/api/v3/fetch/{job.id}")
    assert body["status"] == "failed" and body["message"] == jobs.WORKER_LOST_MESSAGE
    assert entries(job) == ["refund", "reserve"]
    assert account_for(user).balance == balance == ledger_total(account_for(user))


def test_sigterm_finishes_the_current_job_then_exits(api, account, spare_queue):
    user, _ = account
    process = start_worker("graceful", queues=["isolated"])
    job = running_job(user, api)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 0
    assert fresh(job).status == Job.Status.SUCCESS and job.attempt == 1
    assert not [w for w in liveness.live_workers() if w.startswith("graceful")]


def test_second_sigterm_puts_the_job_back_on_its_queue(api, account, spare_queue):
    user, _ = account
    process = start_worker("cold", queues=["isolated"])
    job = running_job(user, api)
    process.send_signal(signal.SIGTERM)
    time.sleep(1.2)  # RQ ignores a second signal within a second of the first
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    assert fresh(job).status == Job.Status.QUEUED and job.attempt == 2
    wait_until(lambda: job.rq_job_id in spare_queue.get_job_ids(), timeout=5)
    assert entries(job) == ["reserve"]  # still reserved, not charged or refunded
