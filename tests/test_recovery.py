"""Crash recovery: a worker killed with SIGKILL mid-job, graceful and cold shutdown. No job is left
running, and credits are charged once or refunded."""

import errno
import json
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import django_rq
import pytest
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image
from rq import Worker

from billing.credits import account_for, ledger_total
from billing.models import CreditEntry
from config import redis_server
from generation.infra import redis_client
from generation.kinds.img2img import Img2ImgParams
from generation.lifecycle import jobs, recovery
from generation.models import Job
from generation.queueing import liveness, queue
from tests.conftest import (
    WorkerLog,
    image_source,
    pause,
    paused,
    png_bytes,
    resume,
    start_worker,
    step_until,
    stop_worker,
)
from tests.test_fetch import _params


def wait_until(predicate, timeout=60, interval=0.1):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(interval)


def fresh(job):
    job.refresh_from_db()
    return job


def hold_job(api, user):
    """An img2img job on "isolated" whose stored input image is a named pipe: the worker that takes it
    blocks reading it, so the job stays running until the test lets it go, on any machine. Start the
    worker for "isolated" after this, so that no worker reads the input before it is a pipe."""
    job = jobs.submit(
        user=user,
        params=Img2ImgParams(prompt="held", width=64, height=64, steps=2, seed=1),
        base_url=api.base_url,
        queue_name="isolated",
        inputs={"init_image": image_source(Image.new("RGB", (64, 64), (90, 120, 200)))},
    )
    pipe = Path(default_storage.path(job.parameters.init_image))
    pipe.unlink()
    os.mkfifo(pipe)
    job.input_pipe = pipe
    return job


@pytest.fixture
def held_job(api, account):
    job = hold_job(api, account[0])
    yield job
    if job.input_pipe.is_fifo():
        job.input_pipe.unlink()


def running(job):
    wait_until(lambda: fresh(job).status == Job.Status.RUNNING)
    return job


def let_go(job):
    """Hand the image to the worker blocked on the pipe; it finishes the job."""
    deadline = time.monotonic() + 30
    while True:  # opening a pipe's writing end fails (ENXIO) while nobody reads it yet
        try:
            fd = os.open(job.input_pipe, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as exc:
            if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    with os.fdopen(fd, "wb") as writer:
        writer.write(png_bytes())


def unblock(job):
    """Make the held job's input a plain file again, for the next worker that runs it."""
    job.input_pipe.unlink()
    job.input_pipe.write_bytes(png_bytes())


def entries(job):
    return sorted(CreditEntry.objects.filter(job=job).values_list("entry_type", flat=True))


def test_killed_worker_job_is_requeued_and_finished_by_another(api, account, spare_queue, held_job):
    user, _ = account
    balance = account_for(user).balance + 1  # held_job reserved its credit
    doomed = start_worker("doomed", queues=["isolated"])
    job = running(held_job)
    assert job.worker_name in liveness.live_workers()
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    unblock(job)

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


def test_job_out_of_tries_fails_and_is_refunded(api, account, spare_queue, held_job):
    user, _ = account
    balance = account_for(user).balance + 1  # held_job reserved its credit
    doomed = start_worker("doomed", queues=["isolated"])
    job = running(held_job)
    Job.objects.filter(pk=job.pk).update(runs=2)  # it was already started twice before
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()

    wait_until(lambda: fresh(job).status == Job.Status.FAILED, timeout=30)
    body = api.post(f"/api/v3/fetch/{job.id}")
    assert body["status"] == "failed" and body["message"] == jobs.WORKER_LOST_MESSAGE
    assert entries(job) == ["refund", "reserve"]
    assert account_for(user).balance == balance == ledger_total(account_for(user))


def test_sigterm_finishes_the_current_job_then_exits(api, account, spare_queue, held_job):
    process = start_worker("graceful", queues=["isolated"])
    log = WorkerLog("graceful")
    job = running(held_job)
    process.send_signal(signal.SIGTERM)
    wait_until(lambda: log.says("arm shut down requested"))  # handled while the job waits for its input
    let_go(job)
    assert process.wait(timeout=120) == 0
    assert fresh(job).status == Job.Status.SUCCESS and job.attempt == 1
    assert not [w for w in liveness.live_workers() if w.startswith("graceful")]


def test_second_sigterm_puts_the_job_back_on_its_queue(api, account, spare_queue, held_job):
    process = start_worker("cold", queues=["isolated"])
    log = WorkerLog("cold")
    job = running(held_job)
    process.send_signal(signal.SIGTERM)
    wait_until(lambda: log.says("arm shut down requested"))
    # RQ's own rule: a second signal within a second of the first (by the date it recorded) is ignored
    first = _worker("cold").shutdown_requested_date
    wait_until(lambda: datetime.now(UTC) - first > timedelta(seconds=1), interval=0.05)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)
    assert log.says("cold shut down")
    assert fresh(job).status == Job.Status.QUEUED and job.attempt == 2
    wait_until(lambda: job.rq_job_id in spare_queue.get_job_ids())
    assert entries(job) == ["reserve"]  # still reserved, not charged or refunded


def _worker(log_name: str) -> Worker:
    """The one live RQ worker started with `start_worker(log_name)`."""
    (found,) = [
        w for w in Worker.all(connection=django_rq.get_connection("default")) if w.name.startswith(log_name + "-")
    ]
    return found


def _state(worker_name: str) -> str | None:
    found = [w for w in Worker.all(connection=django_rq.get_connection("default")) if w.name == worker_name]
    return found[0].get_state() if found else None


@pytest.mark.postgres_only  # paused workers may hold SQLite's one write lock
def test_a_worker_resumed_after_its_job_was_taken_over_writes_nothing_and_stops(api, account, spare_queue):
    """A worker stopped (SIGSTOP) mid-job long enough for its heartbeat to lapse: the job is re-queued and
    a second worker takes it. When the first is resumed, its next progress write is refused (it is not
    that try's any more), so fetch never goes backwards, and it stops there instead of finishing."""
    user, _ = account
    job = jobs.submit(user=user, params=_params(steps=50), base_url=api.base_url, queue_name="isolated")
    zombie = start_worker("zombie", queues=["isolated"])
    rescuer = None
    try:
        with paused(zombie):
            step_until(zombie, lambda: fresh(job).progress_step, lambda seen: seen[-1] >= 4)
            zombie_name = fresh(job).worker_name
            redis_client.connection().delete(liveness.KEY.format(zombie_name))  # its heartbeat lapses
            wait_until(lambda: fresh(job).attempt == 2, timeout=30)  # the other worker's sweep re-queued it
            rescuer = start_worker("rescuer", queues=["isolated"])
            with paused(rescuer):
                step_until(rescuer, lambda: (fresh(job).attempt, fresh(job).progress_step), lambda s: s[-1][1] >= 1)
                taken_over = fresh(job).progress_step
                assert fresh(job).status == Job.Status.RUNNING
                resume(zombie)  # it steps on, then stops at its first refused write
                wait_until(lambda: _state(zombie_name) == "idle", timeout=60)
                assert fresh(job).progress_step == taken_over  # nothing written by the old try
                pause(zombie)
        body = api.wait_for(job.id, timeout=120)
    finally:
        for process in (zombie, rescuer):
            if process is not None:
                stop_worker(process)
    assert body["status"] == "success" and fresh(job).worker_name.startswith("rescuer-")
    assert entries(job) == ["charge", "reserve"]


@pytest.mark.postgres_only  # a paused worker may hold SQLite's one write lock
def test_a_redis_restart_under_a_running_job_does_not_fail_it(api, account, settings, tmp_path, worker):
    """Redis goes away (the job runs on without it) and comes back empty, every heartbeat lost with its
    data: a lost connection is the infrastructure's fault, not the job's, and a worker that publishes its
    heartbeat again is not taken for dead, so the job ends in success on its one try, charged once."""
    user, _ = account
    port = redis_server.free_port()
    url = f"redis://127.0.0.1:{port}/0"
    own = redis_server.start(port, tmp_path / "redis")
    settings.REDIS_URL = url
    settings.RQ_QUEUES = {name: {**config, "URL": url} for name, config in settings.RQ_QUEUES.items()}
    restarted = None
    try:
        with paused(worker):  # the shared worker, on the other Redis, would take this job for lost
            job = jobs.submit(user=user, params=_params(steps=40), base_url=api.base_url, queue_name="isolated")
            restarted = start_worker("restart", queues=["isolated"], REDIS_URL=url)
            with paused(restarted):
                step_until(restarted, lambda: fresh(job).progress_step, lambda seen: seen[-1] >= 2)
                own.terminate()
                own.wait()
                reached = fresh(job).progress_step
            wait_until(lambda: fresh(job).progress_step > reached or fresh(job).is_finished)  # on, without Redis
            own = redis_server.start(port, tmp_path / "redis")  # back, without its data
            wait_until(lambda: fresh(job).is_finished, timeout=120)
    finally:
        if restarted is not None:
            stop_worker(restarted)
        own.terminate()
        own.wait()
    assert fresh(job).status == Job.Status.SUCCESS, fresh(job).error
    assert (job.attempt, job.runs) == (1, 1)
    assert entries(job) == ["charge", "reserve"]


def test_a_job_given_another_try_while_redis_is_away_stays_queued_until_it_is_back(api, account, settings):
    """Not failed and refunded for want of a queue: the sweep queues it once Redis answers again."""
    user, _ = account
    job = jobs.submit(user=user, params=_params(), base_url=api.base_url, queue_name="parked")
    reachable = settings.RQ_QUEUES
    nowhere = f"redis://127.0.0.1:{redis_server.free_port()}/0?socket_connect_timeout=1"
    settings.RQ_QUEUES = {name: {**config, "URL": nowhere} for name, config in reachable.items()}
    assert jobs.retry_or_fail(fresh(job), "its worker stopped")
    assert (fresh(job).status, job.attempt, entries(job)) == (Job.Status.QUEUED, 2, ["reserve"])
    settings.RQ_QUEUES = reachable
    assert recovery.sweep(lost_after=0)["requeued"] == 1
    assert fresh(job).status == Job.Status.QUEUED and job.rq_job_id in django_rq.get_queue("parked").get_job_ids()


@pytest.mark.postgres_only  # the shared worker is paused: on SQLite it may hold the one write lock
def test_after_redis_lost_its_data_no_running_job_is_taken_for_lost_until_heartbeats_could_return(api, account, worker):
    """Every heartbeat went with Redis's data: a running job's worker is judged only one heartbeat lifetime
    after the data began again, time enough for live workers to publish theirs."""
    user, _ = account
    job = jobs.submit(user=user, params=_params(), base_url=api.base_url, queue_name="parked")
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.RUNNING, started_at=timezone.now() - timedelta(minutes=5), worker_name="elsewhere-1"
    )
    conn = redis_client.connection()
    with paused(worker):  # its own sweep would race this one
        conn.delete(liveness.EPOCH_KEY)  # Redis lost its data
        assert recovery.sweep()["recovered"] == 0
        liveness.begin_epoch("tester")
        assert recovery.sweep()["recovered"] == 0
        conn.set(liveness.EPOCH_KEY, json.dumps([time.time() - liveness.ttl() - 1, "tester"]))
        assert recovery.sweep()["recovered"] == 1
    assert fresh(job).attempt == 2


def test_a_job_past_its_timeout_fails_timed_out_and_is_refunded(api, account, spare_queue, settings):
    """GENERATION_JOB_TIMEOUT bounds a try: a job stuck on its input (a pipe nobody writes) ends
    "Timed out", refunded, and its worker takes the next job."""
    user, _ = account
    settings.GENERATION_JOB_TIMEOUT = 2
    job = hold_job(api, user)
    worker = start_worker("timeout", queues=["isolated"])
    try:
        wait_until(lambda: fresh(job).is_finished)
        assert api.post(f"/api/v3/fetch/{job.id}")["message"] == "Timed out"
        assert entries(job) == ["refund", "reserve"]
        settings.GENERATION_JOB_TIMEOUT = 900
        after = jobs.submit(user=user, params=_params(), base_url=api.base_url, queue_name="isolated")
        wait_until(lambda: fresh(after).status == Job.Status.SUCCESS)
    finally:
        stop_worker(worker)
        job.input_pipe.unlink()


def test_redis_losing_its_data_queues_what_it_lost_at_once(api, account, worker):
    """A queued job whose RQ entry vanished with Redis's data is queued again by the first worker that sees
    the epoch gone, not half a minute later by the periodic sweep."""
    user, _ = account
    log = WorkerLog()
    job = jobs.submit(user=user, params=_params(), base_url=api.base_url, queue_name="parked")
    conn = redis_client.connection()
    conn.delete(queue.queue_key("parked"), f"rq:job:{job.rq_job_id}", liveness.EPOCH_KEY)  # the data is gone
    wait_until(lambda: fresh(job).attempt == 2)
    assert job.rq_job_id in django_rq.get_queue("parked").get_job_ids()
    assert log.says("Redis has no epoch") and log.says(f"Job {job.id} re-queued: not on its queue")


def test_a_redis_left_by_a_recreated_database_forgets_that_databases_job_keys(transactional_db, redis_connection):
    """`var/` deleted and the database made again while Redis kept running: job 1's old answer, finished
    flag and cancel flag must not answer, wake or cancel the new job 1. A worker that starts claims Redis
    for its database; a restart against the same database keeps everything."""
    old = {queue.ANSWER_KEY.format(1): "[1, {}]", queue.FINISHED_KEY.format(1): "1", queue.CANCEL_KEY.format(1): "1"}
    for key, value in old.items():
        redis_connection.set(key, value)
    redis_connection.set(recovery.DATABASE_KEY, "2020-01-01T00:00:00+00:00")  # another database's birth
    assert recovery.claim_redis() is True
    assert not any(redis_connection.exists(key) for key in old)
    redis_connection.set(queue.CANCEL_KEY.format(2), "1")
    assert recovery.claim_redis() is False  # the same database: nothing forgotten
    assert redis_connection.exists(queue.CANCEL_KEY.format(2))
    redis_connection.delete(queue.CANCEL_KEY.format(2))
