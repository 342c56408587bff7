"""ControlNet (/api/v5/controlnet, /api/v6/images/controlnet, /api/v1/enterprise/controlnet): library
ControlNets steer SDXL from a control image (canny hints made by auto_hint), alone, several at once, with
an img2img start or a mask; refused before any charge when a model or an image is wrong."""

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image, ImageDraw

from billing.models import Account, CreditEntry
from generation.inputs import storage
from generation.kinds.controlnet import ControlNetParams
from generation.lifecycle import jobs
from generation.models import Job, LibraryModel
from generation.runtime.predictors import JobInput, LocalModel
from generation.runtime.sdxl import SDXLPredictor
from tests import model_files
from tests.conftest import ROOT, download, image_source, start_worker, stop_worker
from tests.test_model_library import add, differ, pixels, same
from tests.test_recovery import fresh, wait_until
from tests.test_text2img import decode

PATHS = {
    "/api/v5/controlnet": "/api/v5/fetch/",
    "/api/v6/images/controlnet": "/api/v6/images/fetch/",
    "/api/v1/enterprise/controlnet": "/api/v1/enterprise/fetch/",
}
V6 = "/api/v6/images/controlnet"


def data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def shapes(box=(16, 16, 48, 48), size=(64, 64)) -> Image.Image:
    """A grey picture with a bright rectangle: clear edges for canny."""
    image = Image.new("RGB", size, (90, 90, 90))
    ImageDraw.Draw(image).rectangle(box, fill=(240, 240, 240))
    return image


BASE = {
    "prompt": "a house",
    "controlnet_model": "canny",
    "control_image": data_url(shapes()),
    "num_inference_steps": 2,
    "seed": 5,
}


@pytest.fixture(scope="session")
def controlnet_files():
    folder = ROOT / "var" / "test-models"
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "a": model_files.controlnet(folder / "controlnet-a", seed=1),
        "b": model_files.controlnet(folder / "controlnet-b", seed=2),
    }


@pytest.fixture
def controlnets(controlnet_files, transactional_db):
    return {
        "canny": add(controlnet_files["a"], "canny", "controlnet"),
        "tile": add(controlnet_files["b"], "tile", "controlnet"),
        "depth": add(controlnet_files["b"], "depth", "controlnet"),
    }


@pytest.mark.parametrize("path", PATHS)
def test_each_path_family_answers_like_text2img_with_the_hint_it_used(api, controlnets, path):
    queued = api.post(path, {**BASE, "instant_response": "yes"})
    assert queued["fetch_result"] == f"{api.base_url}{PATHS[path]}{queued['id']}"
    body = api.wait_for(queued["id"])
    assert body["status"] == "success", body
    assert decode(body["output"][0]).size == (64, 64)  # the control image's size
    meta = body["meta"]
    assert meta["controlnet_model"] == "canny" and meta["controlnet_type"] == "canny"
    assert meta["controlnet_conditioning_scale"] == "1.0" and meta["auto_hint"] == "yes"
    assert meta["guess_mode"] == "no" and meta["not_applied"] == []
    hint = np.asarray(Image.open(io.BytesIO(download(meta["control_hints"][0]))).convert("L"))
    # canny edges: black with white lines along the rectangle's border, nothing inside or outside it
    assert set(np.unique(hint)) == {0, 255}
    assert hint[16, 16:49].max() == 255 and hint[32, 32] == 0 and hint[4, 4] == 0
    fetched = api.post(f"{PATHS[path]}{body['id']}")
    assert fetched["meta"]["control_hints"] == meta["control_hints"]


def test_the_image_follows_the_control_image_and_not_an_unrelated_field(api, controlnets):
    base = pixels(api.post(V6, BASE))
    moved = pixels(api.post(V6, {**BASE, "control_image": data_url(shapes(box=(4, 30, 60, 40)))}))
    assert differ(moved, base)
    assert same(pixels(api.post(V6, {**BASE, "track_id": "unrelated"})), base)
    weaker = pixels(api.post(V6, {**BASE, "controlnet_conditioning_scale": "0.1"}))
    assert not same(weaker, base)  # the tiny ControlNet's effect saturates: a small change, but one
    other_model = pixels(api.post(V6, {**BASE, "controlnet_model": "tile"}))
    assert differ(other_model, base)
    assert same(pixels(api.post(V6, BASE)), base)  # switching back: the first model, as it was


def test_an_init_image_alone_is_the_control_image(api, controlnets):
    shared = {key: value for key, value in BASE.items() if key != "control_image"}
    as_init = pixels(api.post(V6, {**shared, "init_image": BASE["control_image"]}))
    assert same(as_init, pixels(api.post(V6, BASE)))


def test_several_controlnets_at_once(api, controlnets):
    single = pixels(api.post(V6, BASE))
    body = api.post(
        V6,
        {
            **BASE,
            "controlnet_model": "canny,tile",
            "controlnet_conditioning_scale": "1,0.5",
            "control_image": [data_url(shapes()), data_url(shapes(box=(0, 0, 20, 20)))],
        },
    )
    assert differ(pixels(body), single)
    meta = body["meta"]
    assert meta["controlnet_type"] == "canny,tile" and meta["controlnet_conditioning_scale"] == "1.0,0.5"
    assert len(meta["control_hints"]) == 2
    tile_hint = Image.open(io.BytesIO(download(meta["control_hints"][1]))).convert("RGB")
    assert same(np.asarray(tile_hint, dtype=np.int16), np.asarray(shapes(box=(0, 0, 20, 20)), dtype=np.int16))
    shared_image = api.post(V6, {**BASE, "controlnet_model": "canny,tile"})
    assert len(shared_image["meta"]["control_hints"]) == 2 and differ(pixels(shared_image), single)
    mismatched = api.post(V6, {**BASE, "controlnet_model": "canny,tile", "controlnet_conditioning_scale": "1,2,3"})
    assert list(mismatched["message"]) == ["controlnet_conditioning_scale"]


def test_an_init_image_with_a_control_image_is_an_img2img_start(api, controlnets):
    start = Image.effect_noise((64, 64), 60).convert("RGB")
    control_only = pixels(api.post(V6, BASE))
    body = api.post(V6, {**BASE, "init_image": data_url(start), "strength": 0.6})
    assert differ(pixels(body), control_only)
    assert body["meta"]["strength"] == 0.6 and body["meta"]["init_image"].startswith("http")


def test_controlnet_inpainting_keeps_the_pixels_outside_the_mask(api, controlnets):
    start = Image.effect_noise((64, 64), 80).convert("RGB")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))
    body = api.post(
        V6,
        {**BASE, "init_image": data_url(start), "mask_image": data_url(mask), "strength": 1, "num_inference_steps": 3},
    )
    output = pixels(body)
    original = np.asarray(start, dtype=np.int16)
    assert np.array_equal(output[:, 32:], original[:, 32:])
    assert differ(output[:, :32], original[:, :32])


def test_an_annotator_that_is_not_installed_is_named_and_the_image_used_as_given(api, controlnets):
    body = api.post(V6, {**BASE, "controlnet_model": "depth"})
    assert body["meta"]["controlnet_type"] == "depth"
    reasons = {entry["field"]: entry["reason"] for entry in body["meta"]["not_applied"]}
    assert "no depth annotator is installed" in reasons["auto_hint"]
    hint = np.asarray(Image.open(io.BytesIO(download(body["meta"]["control_hints"][0]))).convert("RGB"), dtype=np.int16)
    assert same(hint, np.asarray(shapes(), dtype=np.int16))
    # without auto_hint a canny model gets the image as given too
    raw = api.post(V6, {**BASE, "auto_hint": "no"})
    raw_hint = np.asarray(
        Image.open(io.BytesIO(download(raw["meta"]["control_hints"][0]))).convert("RGB"), dtype=np.int16
    )
    assert same(raw_hint, np.asarray(shapes(), dtype=np.int16)) and raw["meta"]["not_applied"] == []


def test_the_price_uses_the_controlnets_multiplier(api, account, controlnets, settings):
    LibraryModel.objects.filter(public_id="canny").update(credit_multiplier=2)
    body = api.post(V6, {**BASE, "samples": 2})
    assert body["status"] == "success" and len(body["output"]) == 2
    assert CreditEntry.objects.get(job_id=body["id"], entry_type="reserve").amount == -4


def test_refusals_come_before_any_charge(api, account, controlnets, settings):
    user, _ = account
    settings.INPUT_IMAGE_MAX_PIXELS = 100 * 100
    before = Account.objects.get(user=user).balance
    add(model_files.lora(ROOT / "var" / "test-models" / "lora-a", seed=1), "some_lora", "lora")
    cases = {
        "controlnet_model": [{**BASE, "controlnet_model": "nope"}, {**BASE, "controlnet_model": "some_lora"}],
        "control_image": [
            {key: value for key, value in BASE.items() if key != "control_image"},
            {**BASE, "control_image": data_url(Image.new("RGB", (200, 64)))},
            {**BASE, "controlnet_model": "canny,tile", "control_image": [BASE["control_image"]] * 3},
        ],
        "controlnet_type": [{**BASE, "controlnet_type": "telepathy"}],
        "init_image": [{**BASE, "mask_image": BASE["control_image"]}],
    }
    for field, bodies in cases.items():
        for body in bodies:
            answer = api.post(V6, body)
            assert answer["status"] == "error" and list(answer["message"]) == [field], (field, answer)
    assert api.post(V6, {k: v for k, v in BASE.items() if k != "controlnet_model"})["message"] == {
        "controlnet_model": ["The controlnet model field is required."]
    }
    assert Account.objects.get(user=user).balance == before and not Job.objects.filter(user=user).exists()


def test_model_list_and_the_library_checks(api, controlnets, controlnet_files, tmp_path):
    listed = {
        entry["model_id"]: entry
        for entry in api.post_raw("/api/v4/dreambooth/model_list", json={"key": api.key}).json()
    }
    assert listed["canny"]["model_category"] == "controlnet" and listed["canny"]["kind"] == "controlnet"
    other = tmp_path / "other-unet"
    other.mkdir()
    for path in controlnet_files["a"].iterdir():
        (other / path.name).write_bytes(path.read_bytes())
    config = json.loads((other / "config.json").read_text())
    config["cross_attention_dim"] = 2048
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(CommandError, match="does not fit this SDXL: its cross_attention_dim"):
        call_command("addmodel", str(other), "--id", "other-canny", "--kind", "controlnet")
    with pytest.raises(CommandError, match="not a diffusers ControlNet folder"):
        call_command("addmodel", str(model_files.demo_model() / "vae"), "--id", "vae-as-cn", "--kind", "controlnet")


def test_single_controlnet_jobs_batch_with_their_own_control_images(api, account, controlnets, spare_queue):
    user, _ = account
    controls = [shapes(), shapes(box=(2, 40, 62, 60)), shapes(box=(30, 0, 40, 64))]
    submitted = []
    for index, control in enumerate(controls):
        params = ControlNetParams(
            prompt=f"a house {index}",
            width=64,
            height=64,
            steps=3,
            seed=index,
            samples=1 + index % 2,
            controlnets=[{"id": "canny", "scale": 1.0, "type": "canny"}],
            control_image=storage.store_input(image_source(control, "control_image")),
        )
        submitted.append(jobs.submit(user=user, params=params, base_url=api.base_url, queue_name="parked"))
    worker = start_worker("batcher", queues=["parked"], WORKER_MAX_BATCH="4")
    try:
        for job in submitted:
            wait_until(lambda job=job: fresh(job).status == Job.Status.SUCCESS, timeout=60)
    finally:
        stop_worker(worker)
    finished = [fresh(job) for job in submitted]
    assert len({job.generation_time for job in finished}) == 1  # one pipeline call
    alone = SDXLPredictor(device="cpu")
    model = LocalModel("canny", Path(controlnets["canny"].source))
    for job, control in zip(finished, controls):
        expected = alone.predict(JobInput(job.parameters, images={"control_image": control}, controlnets=[model]))
        got = [decode(url) for url in api.post(f"/api/v6/images/fetch/{job.id}")["output"]]
        assert len(got) == job.parameters.samples
        for image, reference in zip(got, expected.images):
            assert np.abs(np.asarray(image, dtype=int) - np.asarray(reference, dtype=int)).max() <= 2


def test_the_worker_keeps_a_bounded_cache_of_controlnets(controlnet_files, settings):
    """With room for one ControlNet, the other is dropped when a job needs it, and loaded again later
    gives the same image: the cache bounds memory without changing results."""
    settings.CONTROLNET_CACHE_COUNT = 1
    worker = SDXLPredictor(device="cpu")
    models = {
        name: LocalModel(name, controlnet_files[key], content_hash=name) for name, key in (("a", "a"), ("b", "b"))
    }
    control = shapes()

    def run(name):
        params = ControlNetParams(
            prompt="a house",
            width=64,
            height=64,
            steps=2,
            seed=5,
            controlnets=[{"id": name, "scale": 1.0, "type": "canny"}],
        )
        image = worker.predict(JobInput(params, images={"control_image": control}, controlnets=[models[name]])).images[
            0
        ]
        return np.asarray(image, dtype=np.int16)

    first = run("a")
    assert list(worker.controlnets) == ["a"]
    other = run("b")
    assert list(worker.controlnets) == ["b"] and differ(other, first)
    assert np.array_equal(run("a"), first) and list(worker.controlnets) == ["a"]
