"""PostgreSQL going away and coming back (a restart): every job of a batch is still recorded, a job its
live worker could not record is taken over by the sweep, and no web connection broken by the restart
answers a request with an error afterwards."""

import subprocess
import sys
import time
from datetime import timedelta

import pytest
import requests
from django.db import connection
from django.utils import timezone

from config import redis_server
from generation.lifecycle import jobs, recovery
from generation.models import Job
from generation.queueing import liveness
from tests.conftest import (
    ROOT,
    WorkerLog,
    _database_url,
    paused,
    start_worker,
    step_until,
    stop_worker,
    worker_environment,
)
from tests.tcp_proxy import TcpProxy
from tests.test_batching import ledger, submit
from tests.test_recovery import fresh, wait_until

pytestmark = pytest.mark.postgres_only


def through(proxy: TcpProxy, **query) -> str:
    """The test database's URL, reached through `proxy`."""
    host = connection.settings_dict["HOST"] or "127.0.0.1"
    url = _database_url().replace(f"@{host}:{connection.settings_dict['PORT'] or 5432}/", f"@127.0.0.1:{proxy.port}/")
    return url + ("?" + "&".join(f"{key}={value}" for key, value in query.items()) if query else "")


def database_proxy() -> TcpProxy:
    return TcpProxy(connection.settings_dict["HOST"] or "127.0.0.1", int(connection.settings_dict["PORT"] or 5432))


def test_each_job_of_a_batch_is_recorded_once_the_database_is_back(api, account, spare_queue):
    """The database goes away while a batch of three runs (its worker alone loses it): the worker keeps
    generating, tries to record each job again and again, and records all three once it is back."""
    user, _ = account
    batch = [submit(user, api, prompt=f"job {i}", seed=i, steps=100) for i in range(3)]
    proxy = database_proxy()
    log = WorkerLog("outage")
    worker = start_worker("outage", queues=["isolated"], WORKER_MAX_BATCH="4", DATABASE_URL=through(proxy))
    try:
        with paused(worker):
            step_until(
                worker,
                lambda: tuple(fresh(job).status for job in batch),
                lambda seen: seen[-1] == (Job.Status.RUNNING,) * 3,
            )
            proxy.cut()
        wait_until(lambda: log.says("Database unavailable while settling job"), timeout=120)
        proxy.restore()
        for job in batch:
            wait_until(lambda job=job: fresh(job).is_finished, timeout=120)
    finally:
        stop_worker(worker)
    assert [fresh(job).status for job in batch] == [Job.Status.SUCCESS] * 3
    assert len({job.generation_time for job in batch}) == 1  # the one call they ran in
    for job in batch:
        assert ledger(job) == ["charge", "reserve"] and len(job.output_names) == 1
        assert api.post(f"/api/v3/fetch/{job.id}")["status"] == "success"


def test_a_job_its_live_worker_no_longer_names_is_given_another_try(api, account, worker):
    """A job left `running` by a live worker that has gone on to other work (it could not record the
    job's end before giving up) is re-queued by the sweep, and by a fetch of it."""
    user, _ = account
    name = next(name for name, record in liveness.live_workers().items() if record["pid"] == worker.pid)
    dropped = [submit(user, api, "parked", prompt=f"dropped {i}") for i in range(2)]
    for job in dropped:
        jobs.start(job.id, job.attempt, worker_name=name)
    Job.objects.filter(pk__in=[job.id for job in dropped]).update(started_at=timezone.now() - timedelta(minutes=5))

    assert recovery.sweep()["recovered"] == 2
    assert all(fresh(job).status == Job.Status.QUEUED and job.attempt == 2 for job in dropped)

    again = dropped[0]
    jobs.start(again.id, again.attempt, worker_name=name)
    Job.objects.filter(pk=again.id).update(started_at=timezone.now() - timedelta(minutes=5))
    assert api.post(f"/api/v3/fetch/{again.id}")["status"] == "failed"
    assert fresh(again).status == Job.Status.FAILED and again.runs == 2  # out of tries: failed, refunded
    assert ledger(again) == ["refund", "reserve"]


def test_a_job_its_live_worker_still_names_is_left_alone(api, account, worker):
    user, _ = account
    name = next(name for name, record in liveness.live_workers().items() if record["pid"] == worker.pid)
    job = submit(user, api, "parked", prompt="still running")
    jobs.start(job.id, job.attempt, worker_name=name)
    Job.objects.filter(pk=job.id).update(started_at=timezone.now() - timedelta(minutes=5))
    record = liveness.live_workers()[name]
    with paused(worker):  # its heartbeat, as it would say while it settles the job, held for the test
        liveness.publish(name, {**record, "job_id": job.id, "job_ids": [job.id], "beat_at": time.time()})
        assert recovery.sweep()["recovered"] == 0
    assert fresh(job).status == Job.Status.RUNNING


def test_no_web_connection_broken_by_a_restart_answers_an_error(account):
    """The web tier (its connection pool) while PostgreSQL is away answers "Service temporarily
    unavailable", and once it is back, the next requests are answered as usual: no connection the
    restart broke is lent to a request."""
    _, key = account
    proxy = database_proxy()
    port = redis_server.free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        env=worker_environment(DATABASE_URL=through(proxy), DB_POOL="true", DB_POOL_MAX="4"),
    )
    url = f"http://127.0.0.1:{port}/api/v3/fetch/987654321"
    try:
        wait_until(lambda: _answers(url, key), timeout=60)
        for _ in range(4):  # the pool holds connections now
            assert requests.post(url, json={"key": key}, timeout=30).json()["message"] == "Request not found"
        proxy.cut()
        during = requests.post(url, json={"key": key}, timeout=60)
        proxy.restore()
        answers = [requests.post(url, json={"key": key}, timeout=30) for _ in range(8)]
    finally:
        web.terminate()
        web.wait(timeout=20)
    assert during.json()["message"].startswith("Service temporarily unavailable") and "Retry-After" in during.headers
    assert [answer.status_code for answer in answers] == [200] * 8, [answer.text for answer in answers]
    assert {answer.json()["message"] for answer in answers} == {"Request not found"}


def _answers(url: str, key: str) -> bool:
    try:
        return requests.post(url, json={"key": key}, timeout=5).status_code == 200
    except requests.ConnectionError:
        return False
