"""Training (the hosted training API): LoRA and DreamBooth trainings of the tiny demo SDXL on a training
worker, their stages by status and by webhook, the LoRA private to its owner on every path, cancel,
resume after a SIGKILL, and datasets refused before any charge."""

import base64
import io
import json
import os
import zipfile

import numpy as np
import pytest
import requests
import torch
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import transaction
from PIL import Image, ImageDraw
from safetensors import safe_open

from billing.models import Account, CreditEntry
from generation.inputs import library, storage
from generation.kinds import training
from generation.models import Job, LibraryModel
from generation.queueing import liveness
from tests import model_files
from tests.conftest import Api, WorkerLog, kill, make_account, paused, start_worker, step_until, stop_worker
from tests.http_server import Route
from tests.test_recovery import fresh, wait_until
from tests.test_text2img import decode

TRAINER_ENV = {"OMP_NUM_THREADS": "1"}  # one thread: steps as fast as two on a shared CPU, and the same LoRA


class Trainer:
    """This file's worker serving the training queue alone, beside the session's generation worker: started
    once for the file, and again for the test after one that killed it."""

    def __init__(self):
        self.process = None

    def running(self):
        if self.process is None or self.process.poll() is not None:
            self.process = start_worker("trainer", queues=["training"], **TRAINER_ENV)
        return self.process


@pytest.fixture(scope="module")
def trainers(worker):
    keeper = Trainer()
    yield keeper
    if keeper.process:
        stop_worker(keeper.process)


@pytest.fixture
def trainer(trainers):
    return trainers.running()


@pytest.fixture(autouse=True)
def small_trainings(settings):
    small_trainings_for(settings)


def small_trainings_for(settings):
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


def test_a_lora_training_reaches_model_ready_and_its_lora_changes_the_image(api, account, trainer, worker, http_server):
    user, _ = account
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, trainer.pid) == min(19, ours + 10)  # generations come first
    assert os.getpriority(os.PRIO_PROCESS, worker.pid) == ours
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


@pytest.fixture
def owned_lora(account, tmp_path):
    """A LoRA in the library owned by the account (as a training leaves one), made without training."""
    user, _ = account
    call_command("addmodel", str(model_files.lora(tmp_path / "lora", seed=3)), "--id", "zxq-own", "--kind", "lora")
    LibraryModel.objects.filter(public_id="zxq-own").update(owner=user, is_public=False)
    return "zxq-own"


def test_an_owned_model_is_its_owners_alone_on_every_path(api, live_server, owned_lora):
    """Another account can neither list, read, use nor delete the owner's LoRA; the owner can on each."""
    _, other_key = make_account("mallory@example.com")
    other, owner = Api(live_server.url, other_key), api
    v4 = "/api/v4/dreambooth/model_list"
    assert owned_lora in {entry["model_id"] for entry in owner.post(v4)}
    assert owned_lora not in {entry["model_id"] for entry in other.post(v4)}
    loras = requests.get(live_server.url + "/sdapi/v1/loras", auth=("x", other_key), timeout=30).json()
    assert owned_lora not in {lora["name"] for lora in loras}
    mine = requests.get(live_server.url + "/sdapi/v1/loras", auth=("x", owner.key), timeout=30).json()
    assert owned_lora in {lora["name"] for lora in mine}

    refused = other.post(
        "/api/v6/images/text2img", {"prompt": "x", "width": 64, "height": 64, "lora_model": owned_lora}
    )
    assert refused["status"] == "error" and refused["message"]["lora_model"] == [
        f"The lora model {owned_lora!r} does not exist."
    ]
    a1111 = requests.post(
        live_server.url + "/sdapi/v1/txt2img",
        json={"prompt": f"<lora:{owned_lora}:1> x", "width": 64, "height": 64, "steps": 2},
        auth=("x", other_key),
        timeout=60,
    )
    assert a1111.status_code == 422 and owned_lora in a1111.text
    used = owner.post(
        "/api/v6/images/text2img",
        {"prompt": "x", "width": 64, "height": 64, "num_inference_steps": 2, "lora_model": owned_lora},
    )
    assert used["status"] == "success", used
    assert (
        other.post("/api/v3/verify_model".replace("v3", "v1/enterprise/txt2img"), {"model_id": owned_lora})["status"]
        == "error"
    )
    assert LibraryModel.objects.filter(public_id=owned_lora).exists()


def test_another_accounts_training_is_answered_like_one_that_does_not_exist(api, live_server, account, trainer):
    started = train(api, max_train_steps=2)
    _, other_key = make_account("eve@example.com")
    other = Api(live_server.url, other_key)
    training_id = started["training_id"]
    for path in (
        f"fine_tune_status/{training_id}",
        f"cancel_training/{training_id}",
        f"cancle_training/{training_id}",
        f"finetune/delete/{training_id}",
    ):
        assert other.post(f"/api/v3/{path}") == {
            "status": "error",
            "message": "Request not found",
            "messege": "Request not found",
        }, path
    assert other.post("/api/v3/finetune_list")["data"] == []
    assert [entry["training_id"] for entry in api.post("/api/v3/finetune_list")["data"]] == [training_id]
    assert wait_ready(api, training_id)["messege"] == "model_ready"
    assert owned_by(training_id) == account[0]
    assert api.post(f"/api/v3/finetune/delete/{training_id}")["status"] == "success"
    assert not LibraryModel.objects.filter(public_id=training_id).exists()
    assert api.post(f"/api/v3/fine_tune_status/{training_id}")["message"] == "Request not found"


def owned_by(model_id):
    return LibraryModel.objects.get(public_id=model_id).owner


def test_cancel_mid_training_refunds_and_leaves_no_model(api, account, trainer):
    user, _ = account
    before = Account.objects.get(user=user).balance
    training_id = train(api, max_train_steps=400)["training_id"]
    job = Job.objects.get(params__training_id=training_id)
    with paused(trainer):  # let it run in slices until it has trained a few steps, then cancel it
        step_until(trainer, lambda: fresh(job).progress_step, lambda seen: seen[-1] >= 3)
        canceled = api.post(f"/api/v3/cancle_training/{training_id}")  # the hosted client's spelling
    assert canceled["status"] == "success" and canceled["message"] == "Training canceled", canceled
    status = api.post(f"/api/v3/fine_tune_status/{training_id}")
    assert status["status"] == "failed" and status["messege"] == "failed" and status["canceled"] is True
    wait_until(lambda: not liveness_names_job(job.id))  # the worker stopped it at its next step
    assert not LibraryModel.objects.filter(public_id=training_id).exists()
    assert Account.objects.get(user=user).balance == before
    assert sorted(CreditEntry.objects.filter(job=job).values_list("entry_type", flat=True)) == ["refund", "reserve"]


def liveness_names_job(job_id: int) -> bool:
    return any(job_id in (info.get("job_ids") or []) for info in liveness.live_workers().values())


def lora_tensors(model_id: str) -> dict:
    entry = LibraryModel.objects.get(public_id=model_id)
    with safe_open(str(library.local_path(entry)), framework="pt") as handle:
        return {name: handle.get_tensor(name) for name in handle.keys()}


def test_a_training_killed_mid_run_resumes_from_its_checkpoint_and_ends_as_if_never_stopped(api, trainers, trainer):
    """SIGKILL after step 5 of 12 (a state is saved every 2 steps): the sweep gives the training a second
    try, which resumes at step 4, and its LoRA is the one an uninterrupted training of the same seed makes."""
    with paused(trainer):
        training_id = train(api, max_train_steps=12, seed=21)["training_id"]
        job = Job.objects.get(params__training_id=training_id)
        step_until(trainer, lambda: fresh(job).progress_step, lambda seen: seen[-1] >= 5)
        kill(trainer)
    wait_until(lambda: fresh(job).attempt == 2, timeout=60)  # the sweep: its worker is gone
    log = WorkerLog("trainer")
    trainers.running()  # a new one takes the training back
    assert wait_ready(api, training_id)["messege"] == "model_ready"
    resumed_at = int(log.text().split("Training resumed at step ")[1].split()[0])
    assert 4 <= resumed_at < 12 and resumed_at % 2 == 0
    again = train(api, max_train_steps=12, seed=21)["training_id"]
    assert wait_ready(api, again)["messege"] == "model_ready"
    assert fresh(job).runs == 2
    resumed, uninterrupted = lora_tensors(training_id), lora_tensors(again)
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[name], uninterrupted[name]) for name in resumed)  # bit for bit on the CPU


@pytest.mark.parametrize(
    "images, message",
    [
        (lambda: [data_url(photo(0)), data_url(photo(1))], "The images must be at least 3 photos"),
        (
            lambda: [data_url(photo(i)) for i in range(21)],
            "The images may be at most 20 photos on your plan; 21 given.",
        ),
        (lambda: [data_url(photo(0)), data_url(photo(1)), "data:image/png;base64,aGVsbG8="], "image 3 of images"),
        (
            lambda: [data_url(photo(0)), data_url(photo(1)), data_url(photo(2)[:300])],
            "image 3 of images is not a readable image",
        ),
        (lambda: "not a list of photos", "image 1 of images must be a PNG, JPEG or WebP image"),
    ],
    ids=["too-few", "too-many", "not-an-image", "cut-short", "garbage"],
)
def test_bad_datasets_are_refused_before_any_charge(api, account, images, message):
    user, _ = account
    before = Account.objects.get(user=user).balance
    body = api.post("/api/v3/lora_fine_tune", {"instance_prompt": "photo of zxq disc", "images": images()})
    assert body["status"] == "error" and message in body["message"]["images"][0], body
    assert Account.objects.get(user=user).balance == before and not Job.objects.filter(user=user).exists()


def zip_of(files: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_zip_of_photos_is_a_dataset_and_a_zip_bomb_is_refused(api, account, http_server, trainer, settings):
    photos = {f"set/{i}.jpg": photo(i, fmt="JPEG") for i in range(4)}
    photos.update({"set/caption.txt": b"zxq", "__MACOSX/._0.jpg": b"junk", "set/0-copy.jpg": photos["set/0.jpg"]})
    http_server.routes["/photos.zip"] = Route(body=zip_of(photos))
    started = api.post(
        "/api/v3/lora_fine_tune",
        {"instance_prompt": "photo of zxq disc", "images": [f"{http_server.url}/photos.zip"], "max_train_steps": 2},
    )
    assert started["status"] == "success", started
    job = Job.objects.get(params__training_id=started["training_id"])
    assert len(job.params["images"]) == 5  # four photos and a duplicate; the caption and the junk skipped
    assert wait_ready(api, started["training_id"])["messege"] == "model_ready"

    http_server.routes["/bomb.zip"] = Route(body=zip_of({"a.png": b"\0" * (settings.INPUT_IMAGE_MAX_BYTES + 1)}))
    bomb = api.post("/api/v3/lora_fine_tune", {"instance_prompt": "x", "images": [f"{http_server.url}/bomb.zip"]})
    assert bomb["status"] == "error" and "'a.png' in image 1 of images is too large" in bomb["message"]["images"][0]


def test_dreambooth_with_prior_preservation_in_the_free_sandbox(api, account, trainer):
    """fine_tune trains the text encoders too (its LoRA has lora_te1/lora_te2 layers), makes class images
    first, says it trains a LoRA rather than a full copy, and in the sandbox costs nothing and is capped."""
    user, _ = account
    before = Account.objects.get(user=user).balance
    started = train(
        api, "/api/sandbox/v3/fine_tune", class_prompt="photo of a disc", max_train_steps=500, lora_type="lycoris"
    )
    assert started["status"] == "success", started
    notes = {note["field"] for note in started["meta"]["not_applied"]}
    assert notes == {"fine_tune", "lora_type"}
    done = wait_ready(api, started["training_id"], prefix="/api/sandbox/v3")
    assert done["messege"] == "model_ready" and done["sandbox"] is True
    assert done["total_steps"] == 10  # TRAINING_SANDBOX_STEPS
    names = lora_tensors(started["training_id"]).keys()
    assert any(name.startswith("lora_te1_") for name in names) and any(name.startswith("lora_te2_") for name in names)
    assert Account.objects.get(user=user).balance == before


def test_base64_crop_makes_a_photo_square_at_the_training_size(api, account):
    body = api.post(
        "/api/v3/base64_crop", {"image": base64.b64encode(photo(0, size=(160, 90))).decode(), "crop": "true"}
    )
    assert body["status"] == "success", body
    square = decode(body["output"])
    assert square.size == (64, 64)  # TRAINING_RESOLUTION
    assert [note["field"] for note in body["meta"]["not_applied"]] == ["face_detection"]  # the centre, said so
    whole = api.post("/api/v3/base64_crop", {"image": data_url(photo(0, size=(160, 90))), "crop": False})
    assert decode(whole["output"]).size == (64, 64) and "meta" not in whole


def test_plan_limits_trainings_at_once_and_the_storage_of_trained_models(api, account, owned_lora):
    """No training worker runs here: the first training stays queued and counts as in flight."""
    user, _ = account
    plan = Account.objects.get(user=user).plan
    assert train(api)["status"] == "success"
    second = train(api)
    assert second["status"] == "error" and "Your plan runs 1 of these at once" in second["message"]["images"][0]
    Job.objects.filter(user=user).update(status=Job.Status.CANCELED)
    plan.owned_models_quota_bytes = LibraryModel.objects.get(public_id=owned_lora).size_bytes
    plan.save()
    full = train(api)
    assert full["status"] == "error" and "Your trained models use" in full["message"]["training"][0], full
    assert Job.objects.filter(user=user, status=Job.Status.QUEUED).count() == 0


def test_closing_an_account_deletes_its_trained_models_and_their_files(account):
    user, _ = account
    stored = storage.save("trained/closing.safetensors", b"weights")
    LibraryModel.objects.create(
        public_id="closing", model_type="lora", source=f"storage:{stored}", owner=user, is_public=False
    )
    with transaction.atomic():
        user.delete()
    assert not LibraryModel.objects.filter(public_id="closing").exists()
    assert not default_storage.exists(stored)
