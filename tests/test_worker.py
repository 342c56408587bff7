"""The worker: one resident pipeline, failures end as `failed`, progress recorded."""

import subprocess
import sys
import time

import django_rq
import pytest
from diffusers import StableDiffusionXLPipeline
from django.db import connection

from config import redis_server
from generation.lifecycle import jobs
from generation.models import Job
from generation.runtime import bridge
from generation.runtime.worker import GenerationWorker
from tests.conftest import ROOT, WorkerLog, stop_worker, worker_environment
from tests.http_server import TcpRelay
from tests.test_fetch import _params
from tests.test_recovery import wait_until


def in_process_worker(queue_name: str = "isolated") -> GenerationWorker:
    queue = django_rq.get_queue(queue_name)
    return GenerationWorker([queue], connection=queue.connection)


def run_burst(queue_name: str):
    in_process_worker(queue_name).work(burst=True)


@pytest.fixture
def isolated_job(api, account):
    """A job on a queue only this test's in-process worker serves."""
    user, _ = account
    return jobs.submit(user=user, api_key=None, params=_params(steps=3), base_url=api.base_url, queue_name="isolated")


def test_a_pipeline_error_ends_failed_and_fetch_says_so(api, isolated_job, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(StableDiffusionXLPipeline, "__call__", out_of_memory)
    worker = in_process_worker()
    worker.work(burst=True)

    body = api.post(f"/api/v3/fetch/{isolated_job.id}")
    assert body == {
        "status": "failed",
        "id": isolated_job.id,
        "message": "Failed, Try Again",
        "messege": "Failed, Try Again",
        "output": [],
    }
    # the worker survives: the next job succeeds
    good = jobs.submit(
        user=isolated_job.user, api_key=None, params=_params(), base_url=api.base_url, queue_name="isolated"
    )
    monkeypatch.undo()
    worker.work(burst=True)  # the same worker, its pipeline as it was
    good.refresh_from_db()
    assert good.status == Job.Status.SUCCESS and good.worker_name == worker.name


def test_the_pipeline_is_loaded_once_and_progress_is_recorded(api, isolated_job):
    predictor = bridge.predictor("sdxl")
    run_burst("isolated")
    pipe = predictor.pipelines["text_to_image"]
    second = jobs.submit(
        user=isolated_job.user, api_key=None, params=_params(), base_url=api.base_url, queue_name="isolated"
    )
    run_burst("isolated")
    assert predictor.pipelines["text_to_image"] is pipe

    isolated_job.refresh_from_db()
    second.refresh_from_db()
    assert isolated_job.status == second.status == Job.Status.SUCCESS
    assert (isolated_job.progress_step, isolated_job.progress_total) == (3, 3)
    assert isolated_job.started_at <= isolated_job.finished_at


@pytest.mark.postgres_only  # the worker reaches PostgreSQL through a relay the test opens
def test_a_worker_started_before_the_database_waits_for_it(api, account, spare_queue):
    """The database is not there when the worker starts: it says so and tries again, then serves once it
    is (instead of dying, leaving its supervisor to guess)."""
    user, _ = account
    db = connection.settings_dict
    relay = TcpRelay((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)), redis_server.free_port())
    url = f"postgres://{db['USER']}@127.0.0.1:{relay.port}/{db['NAME']}"
    log = WorkerLog("dbwait")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", "isolated", "--name", f"dbwait-{time.time_ns()}"],
        cwd=ROOT,
        env=worker_environment(DATABASE_URL=url),
        stdout=open(log.path, "ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: log.says("Database unavailable at start"))
        assert process.poll() is None  # still there, waiting
        relay.open()
        job = jobs.submit(user=user, params=_params(), base_url=api.base_url, queue_name="isolated")
        wait_until(lambda: Job.objects.get(pk=job.pk).status == Job.Status.SUCCESS)
    finally:
        stop_worker(process)
        relay.close()
