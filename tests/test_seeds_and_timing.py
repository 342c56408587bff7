"""meta.seeds and queue_time (beyond v3): each image of a batch is reproducible alone from its seed."""

import io

import numpy as np
from PIL import Image

from generation.models import Job
from tests.conftest import download

REQUEST = {"prompt": "four lighthouses", "width": 64, "height": 64, "num_inference_steps": 3}


def pixels(url) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(download(url))), dtype=np.int16)


def test_image_i_of_a_batch_is_reproduced_alone_from_its_seed(api):
    batch = api.post("/api/v3/text2img", {**REQUEST, "samples": 4, "seed": 5000})
    assert batch["status"] == "success"
    assert batch["meta"]["seeds"] == [5000, 5001, 5002, 5003]
    alone = api.post("/api/v3/text2img", {**REQUEST, "samples": 1, "seed": batch["meta"]["seeds"][2]})
    assert alone["meta"]["seeds"] == [5002]
    difference = np.abs(pixels(batch["output"][2]) - pixels(alone["output"][0]))
    assert difference.max() <= 2  # the same image (batched math may round a pixel differently)
    assert np.abs(pixels(batch["output"][1]) - pixels(alone["output"][0])).max() > 20


def test_queue_time_beside_generation_time(api):
    body = api.post("/api/v3/text2img", {**REQUEST, "samples": 1})
    job = Job.objects.get(pk=body["id"])
    assert body["queue_time"] == round((job.started_at - job.queued_at).total_seconds(), 3) >= 0
    assert isinstance(body["generationTime"], float)
    processing = api.post("/api/v3/text2img", {**REQUEST, "instant_response": "yes"})
    assert processing["meta"]["seeds"] == [processing["meta"]["seed"]]
