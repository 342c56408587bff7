"""Training (the hosted training API): LoRA and DreamBooth trainings of the tiny demo SDXL on a training
worker, their stages by status and by webhook, the LoRA private to its owner on every path, cancel,
resume after a SIGKILL, and datasets refused before any charge."""

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw
from safetensors import safe_open

from billing.models import Account, CreditEntry
from generation.inputs import library
from generation.kinds import training
from generation.models import Job, LibraryModel
from tests.conftest import start_worker, stop_worker
from tests.http_server import Route
from tests.test_recovery import wait_until
from tests.test_text2img import decode

TRAINER_ENV = {"OMP_NUM_THREADS": "1"}  # one thread: steps as fast as two on a shared CPU, and the same LoRA


@pytest.fixture(scope="module")
def trainer(worker):
    """A worker that serves the training queue alone, beside the session's generation worker."""
    process = start_worker("trainer", queues=["training"], **TRAINER_ENV)
    yield process
    stop_worker(process)


@pytest.fixture(autouse=True)
def small_trainings(settings):
    """Trainings sized to the demo model: 64x64, a learning rate that shows in 10 steps."""
    settings.TRAINING_RESOLUTION = 64
    settings.TRAINING_RANK = 4
    settings.TRAINING_LEARNING_RATE = 1e-2
    settings.TRAINING_TEXT_ENCODER_LEARNING_RATE = 1e-3
    settings.TRAINING_SAMPLE_EVERY = 4
    settings.TRAINING_SAMPLE_STEPS = 4
    settings.TRAINING_CLASS_IMAGES = 2
    settings.TRAINING_CLASS_STEPS = 2
    settings.TRAINING_CHECKPOINT_EVERY = 2


def photo(index: int, size=(96, 80), fmt="PNG") -> bytes:
    """A photo of "the subject": a bright disc at a place of its own on a dark ground."""
    image = Image.new("RGB", size, (20, 30 + index * 10, 40))
    draw = ImageDraw.Draw(image)
    x = 10 + index * 7
    draw.ellipse((x, 15, x + 40, 55), fill=(240, 200, 60))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def train(api, path="/api/v3/lora_fine_tune", count=5, **fields) -> dict:
    body = {
        "instance_prompt": "photo of zxq disc",
        "images": [data_url(photo(i)) for i in range(count)],
        "max_train_steps": "8",
        "seed": 7,
        **fields,
    }
    return api.post(path, body)


def wait_ready(api, training_id, prefix="/api/v3") -> dict:
    def finished():
        body = api.post(f"{prefix}/fine_tune_status/{training_id}")
        return body if body["messege"] in (training.READY, training.FAILED) else None

    wait_until(lambda: finished() is not None, timeout=300, interval=0.25)
    return api.post(f"{prefix}/fine_tune_status/{training_id}")


def image_of(api, **fields) -> np.ndarray:
    body = api.post(
        "/api/v6/images/text2img",
        {"prompt": "photo of zxq disc", "width": 64, "height": 64, "num_inference_steps": 4, "seed": 3, **fields},
    )
    assert body["status"] == "success", body
    return np.asarray(decode(body["output"][0]), dtype=int)


def test_a_lora_training_reaches_model_ready_and_its_lora_changes_the_image(api, account, trainer, http_server):
    user, _ = account
    http_server.routes["/hook"] = Route(status=200)
    before = Account.objects.get(user=user).balance
    started = train(api, webhook=f"{http_server.url}/hook", track_id="t-1")
    assert started["status"] == "success" and started["messege"] == started["message"] == "deploying_gpu", started
    assert started["data"].startswith("it will take upto ") and started["training_id"]
    training_id = started["training_id"]

    done = wait_ready(api, training_id)
    assert done["messege"] == "model_ready", done
    assert done["lora_model"] == training_id and done["step"] == done["total_steps"] == 8
    assert done["progress"] == 1.0 and isinstance(done["loss"], float) and len(done["samples"]) == 2
    assert all(decode(url).size == (64, 64) for url in done["samples"])

    job = Job.objects.get(params__training_id=training_id)
    assert sorted(CreditEntry.objects.filter(job=job).values_list("entry_type", flat=True)) == ["charge", "reserve"]
    spent = -sum(CreditEntry.objects.filter(job=job).values_list("amount", flat=True))
    assert spent >= 1 and Account.objects.get(user=user).balance == before - spent

    entry = LibraryModel.objects.get(public_id=training_id)
    assert entry.owner == user and entry.model_type == "lora" and not entry.is_public
    library.check(entry.source, "lora")  # the library's own LoRA validator takes it
    with safe_open(str(library.local_path(entry)), framework="pt") as lora:
        names = list(lora.keys())
    assert any(name.startswith("lora_unet_") and name.endswith(".lora_down.weight") for name in names)
    assert any(name.endswith(".alpha") for name in names)  # kohya's layout, as A1111 and ComfyUI load it

    base, trained = image_of(api), image_of(api, lora_model=training_id)
    assert np.abs(base - trained).mean() > 0.5  # the LoRA changes the image at the same seed

    wait_until(lambda: any(json.loads(r.body)["training_status"] == "model_ready" for r in http_server.requests))
    stages = [json.loads(request.body)["training_status"] for request in http_server.requests]
    assert stages == [stage for stage in training.STAGES[1:] if stage in stages], stages  # in order
    assert stages[0] == "training_started" and stages[-1] == "model_ready"
    final = json.loads(http_server.requests[-1].body)
    assert final["model_id"] == training_id and final["status"] == "success" and final["track_id"] == "t-1"
