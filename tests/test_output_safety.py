"""An image that comes out NaN or black is generated once more, then the job fails and is refunded."""

import numpy as np
from diffusers import StableDiffusionXLPipeline
from diffusers.pipelines.stable_diffusion_xl.pipeline_output import StableDiffusionXLPipelineOutput

from billing.credits import account_for
from billing.models import CreditEntry
from generation.lifecycle import jobs
from generation.models import Job
from tests.test_fetch import _params
from tests.test_worker import run_burst


def submit(user, api):
    return jobs.submit(user=user, params=_params(samples=2), base_url=api.base_url, queue_name="isolated")


def test_nan_output_fails_and_is_refunded(api, account, monkeypatch):
    user, _ = account
    balance = account_for(user).balance
    calls = []

    def nan_images(self, *args, **kwargs):
        calls.append(1)
        return StableDiffusionXLPipelineOutput(images=np.full((2, 64, 64, 3), np.nan, dtype=np.float32))

    monkeypatch.setattr(StableDiffusionXLPipeline, "__call__", nan_images)
    job = submit(user, api)
    run_burst("isolated")
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and len(calls) == 2
    body = api.post(f"/api/v3/fetch/{job.id}")
    assert body["status"] == "failed" and "invalid image" in body["message"]
    assert account_for(user).balance == balance
    assert sorted(CreditEntry.objects.filter(job=job).values_list("entry_type", flat=True)) == ["refund", "reserve"]


def test_a_black_image_is_generated_again(api, account, monkeypatch):
    user, _ = account
    real_call = StableDiffusionXLPipeline.__call__
    calls = []

    def black_once(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            return StableDiffusionXLPipelineOutput(images=np.zeros((2, 64, 64, 3), dtype=np.float32))
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(StableDiffusionXLPipeline, "__call__", black_once)
    job = submit(user, api)
    run_burst("isolated")
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCESS and len(calls) == 2
