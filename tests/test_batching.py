"""Batching (WORKER_MAX_BATCH): compatible text2img jobs waiting on one queue run in one pipeline call,
each image the one its job gets alone, each job settled, charged and cancelable on its own."""

import numpy as np
import pytest
import requests

from billing.models import CreditEntry
from generation.lifecycle import jobs
from generation.models import Job
from generation.runtime.predictors import JobInput
from generation.runtime.sdxl import SDXLPredictor
from tests import model_files
from tests.conftest import paused, start_worker, step_until, stop_worker
from tests.test_fetch import _params
from tests.test_model_library import add
from tests.test_recovery import fresh, wait_until
from tests.test_text2img import decode

TOLERANCE = 2  # of 255: a batched convolution may round differently from a lone one


def submit(user, api, queue_name="isolated", **changes):
    params = _params(**{"width": 64, "height": 64, "steps": 4, **changes})
    return jobs.submit(user=user, params=params, base_url=api.base_url, queue_name=queue_name)


def ledger(job):
    return sorted(CreditEntry.objects.filter(job=job).values_list("entry_type", flat=True))


def test_compatible_jobs_run_in_one_call_and_each_gets_its_own_images(api, account, spare_queue):
    """Here "isolated" plays the high-priority queue and "parked" the low one."""
    user, _ = account
    batched = [
        submit(user, api, "parked", prompt="a red door", seed=11),
        submit(user, api, "parked", prompt="a blue boat", seed=22, samples=2),
        submit(user, api, "parked", prompt="a green hill", seed=33),
    ]
    other_size = submit(user, api, "parked", prompt="a red door", seed=11, width=96)  # not compatible: alone
    urgent = submit(user, api, "isolated", prompt="a yellow kite", seed=44)  # compatible, higher priority
    worker = start_worker("batcher", queues=["isolated", "parked"], WORKER_MAX_BATCH="4")
    try:
        for job in [*batched, other_size, urgent]:
            wait_until(lambda job=job: fresh(job).status == Job.Status.SUCCESS, timeout=60)
    finally:
        stop_worker(worker)

    # one pipeline call for the three; the other size alone; the higher-priority job first, alone
    assert len({job.generation_time for job in batched}) == 1
    assert other_size.generation_time != batched[0].generation_time != urgent.generation_time
    assert urgent.started_at < min(job.started_at for job in batched)
    alone = SDXLPredictor(device="cpu")
    for job in batched:
        assert ledger(job) == ["charge", "reserve"] and job.seeds == job.parameters.seeds
        expected = alone.predict(JobInput(job.parameters)).images
        got = [decode(url) for url in api.post(f"/api/v3/fetch/{job.id}")["output"]]
        assert len(got) == len(expected) == job.parameters.samples
        for image, reference in zip(got, expected):
            difference = np.abs(np.asarray(image, dtype=int) - np.asarray(reference, dtype=int)).max()
            assert difference <= TOLERANCE, (job.id, difference)


@pytest.mark.postgres_only  # a paused worker may hold SQLite's one write lock
def test_canceling_one_job_of_a_batch_drops_only_its_images(api, account, spare_queue):
    user, _ = account
    worker = start_worker("batcher", queues=["isolated"], WORKER_MAX_BATCH="4")
    try:
        with paused(worker):  # the jobs queued while it waits, then in slices until all three run (one batch)
            batch = [submit(user, api, prompt=f"job {i}", seed=i, steps=40) for i in range(3)]
            step_until(
                worker,
                lambda: tuple(fresh(job).status for job in batch),
                lambda seen: seen[-1] == (Job.Status.RUNNING,) * 3,
            )
            assert api.post(f"/api/v3/cancel/{batch[1].id}")["canceled"] is True
        for job in (batch[0], batch[2]):
            wait_until(lambda job=job: fresh(job).status == Job.Status.SUCCESS, timeout=60)
    finally:
        stop_worker(worker)
    canceled = fresh(batch[1])
    assert canceled.status == Job.Status.CANCELED and canceled.output_names == []
    assert ledger(canceled) == ["refund", "reserve"]
    assert all(ledger(job) == ["charge", "reserve"] and len(job.output_names) == 1 for job in (batch[0], batch[2]))


def test_a_job_whose_images_come_out_invalid_fails_alone_and_its_batch_succeeds(api, account, spare_queue, tmp_path):
    """All three jobs use one library embedding; only the second's prompt has its token, and the
    embedding is broken (NaN out): that job is generated again alone, then failed and refunded, while
    the other two are stored and charged from the batch's one call."""
    user, _ = account
    add(model_files.broken_embedding(tmp_path / "broken.safetensors"), "brokenemb", "embedding")
    prompts = ["a red door", "a blue boat, brokenemb", "a green hill"]
    batch = [submit(user, api, prompt=prompt, seed=i, embeddings=["brokenemb"]) for i, prompt in enumerate(prompts)]
    worker = start_worker("batcher", queues=["isolated"], WORKER_MAX_BATCH="4")
    try:
        for job in batch:
            wait_until(lambda job=job: fresh(job).status in (Job.Status.SUCCESS, Job.Status.FAILED), timeout=60)
    finally:
        stop_worker(worker)
    good, broken = [fresh(batch[0]), fresh(batch[2])], fresh(batch[1])
    answer = api.post(f"/api/v3/fetch/{broken.id}")
    assert answer["status"] == "failed" and "invalid image" in answer["message"], answer
    assert broken.output_names == [] and ledger(broken) == ["refund", "reserve"]
    assert all(job.status == Job.Status.SUCCESS and ledger(job) == ["charge", "reserve"] for job in good)
    assert good[0].generation_time == good[1].generation_time  # one call for the batch
    assert all(len(api.post(f"/api/v3/fetch/{job.id}")["output"]) == 1 for job in good)


def test_a_full_disk_under_one_job_of_a_batch_fails_it_alone_and_leaves_no_torn_file(
    api, account, spare_queue, tmp_path, settings
):
    """The worker's disk runs out of room on the first image of a batch of four: that job fails and is
    refunded, its half-written file is deleted (never served); the other three end as if nothing happened."""
    user, _ = account
    batch = [submit(user, api, prompt=f"a boat {i}", seed=i, steps=1) for i in range(4)]
    worker = start_worker(
        "batcher", queues=["isolated"], WORKER_MAX_BATCH="4", TORN_WRITES="0", TORN_WRITES_COUNTER=str(tmp_path / "n")
    )
    try:
        for job in batch:
            wait_until(lambda job=job: fresh(job).is_finished, timeout=60)
    finally:
        stop_worker(worker)
    torn, others = fresh(batch[0]), [fresh(job) for job in batch[1:]]
    answer = api.post(f"/api/v3/fetch/{torn.id}")
    assert answer["status"] == "failed" and "could not be stored" in answer["message"], answer
    assert ledger(torn) == ["refund", "reserve"] and torn.output_names == []
    assert not list((settings.MEDIA_ROOT / "generations").glob(f"{torn.file_prefix}*"))
    assert requests.get(f"{api.base_url}/media/{torn.output_name(0)}", timeout=10).status_code == 404
    assert len({job.generation_time for job in others}) == 1  # they ran in the one call with it
    for job in others:
        assert job.status == Job.Status.SUCCESS and ledger(job) == ["charge", "reserve"]
        assert decode(api.post(f"/api/v3/fetch/{job.id}")["output"][0]).size == (64, 64)
