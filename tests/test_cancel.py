"""POST /api/v3/cancel/{id} (beyond v3): queued, running and finished jobs; refunds; isolation."""

import django_rq
import pytest
from django.core.files.storage import default_storage

from billing.credits import account_for
from billing.models import CreditEntry
from generation.lifecycle import jobs
from generation.models import Job
from generation.queueing import liveness
from tests.conftest import Api, WorkerLog, make_account, paused, step_until
from tests.test_fetch import _params
from tests.test_recovery import wait_until

CANCELED = {"status": "failed", "message": "Canceled", "messege": "Canceled", "output": [], "canceled": True}
SLOW = {"prompt": "a long one", "width": 64, "height": 64, "num_inference_steps": 50, "instant_response": "yes"}


def ledger(job_id):
    return sorted(CreditEntry.objects.filter(job_id=job_id).values_list("entry_type", flat=True))


def test_cancel_a_queued_job(api, account):
    user, _ = account
    balance = account_for(user).balance
    job = jobs.submit(user=user, params=_params(samples=2), base_url=api.base_url, queue_name="parked")
    assert job.rq_job_id in django_rq.get_queue("parked").get_job_ids()

    body = api.post(f"/api/v3/cancel/{job.id}")
    assert body == {**CANCELED, "id": job.id}
    assert job.rq_job_id not in django_rq.get_queue("parked").get_job_ids()
    assert account_for(user).balance == balance and ledger(job.id) == ["refund", "reserve"]
    assert api.post(f"/api/v3/fetch/{job.id}") == {**CANCELED, "id": job.id}
    # idempotent, also with the id in the body
    assert api.post("/api/v3/cancel", {"request_id": job.id}) == {**CANCELED, "id": job.id}
    assert ledger(job.id) == ["refund", "reserve"]


@pytest.mark.postgres_only  # a paused worker may hold SQLite's one write lock
def test_cancel_a_running_job_stops_it_within_a_few_steps(api, account, worker):
    user, _ = account
    balance = account_for(user).balance
    log = WorkerLog()
    with paused(worker):  # let run in slices until it is seen mid-way, on any machine
        job_id = api.post("/api/v3/text2img", SLOW)["id"]
        job = Job.objects.get(pk=job_id)
        step_until(
            worker,
            lambda: ((job.refresh_from_db() or job).status, job.progress_step),
            lambda seen: seen[-1][1] >= 1,
        )
        assert job.status == Job.Status.RUNNING
        assert api.post(f"/api/v3/cancel/{job_id}") == {**CANCELED, "id": job_id}

    def worker_moved_on():
        return all(info.get("job_id") != job_id for info in liveness.live_workers().values())

    wait_until(worker_moved_on, interval=0.02)
    assert log.says(f"Job(s) [{job_id}] stopped: canceled")  # its pipeline stopped mid-way, not at the end
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELED and job.progress_step < 50
    assert account_for(user).balance == balance and ledger(job_id) == ["refund", "reserve"]
    assert not default_storage.exists(job.output_name(0))
    # the worker is fine: the next job runs
    assert (
        api.post("/api/v3/text2img", {"prompt": "next", "width": 64, "height": 64, "num_inference_steps": 1})["status"]
        == "success"
    )


def test_cancel_after_success_changes_nothing(api, account):
    user, _ = account
    done = api.post("/api/v3/text2img", {"prompt": "done", "width": 64, "height": 64, "num_inference_steps": 1})
    assert done["status"] == "success"
    assert api.post(f"/api/v3/cancel/{done['id']}") == done
    assert ledger(done["id"]) == ["charge", "reserve"]


def test_cannot_cancel_another_accounts_job(api, account, live_server):
    user, _ = account
    job = jobs.submit(user=user, params=_params(), base_url=api.base_url, queue_name="parked")
    _, other_key = make_account("mallory@example.com")
    body = Api(live_server.url, other_key).post(f"/api/v3/cancel/{job.id}")
    assert body == {"status": "error", "message": "Request not found", "messege": "Request not found"}
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED
