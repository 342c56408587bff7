"""The model library: checkpoints, LoRAs, embeddings and VAEs that admins add (files checked first), that
v4/v6/v7 requests choose, that the worker switches per job without leaking into the next, and that are
routed to the workers holding them. Every file is made here (tests/model_files.py)."""

import json
import struct

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from accounts.models import User
from billing.models import Account, CreditEntry, Plan
from generation.answers.hosted import MODEL_CATEGORIES
from generation.kinds.text2img import Text2ImgParams
from generation.models import Job, LibraryModel
from generation.runtime.predictors import JobInput
from generation.runtime.sdxl import SDXLPredictor
from tests import model_files
from tests.conftest import ROOT, Api, make_account, start_worker, stop_worker
from tests.test_text2img import decode

BASE = {"prompt": "a lighthouse", "width": 64, "height": 64, "num_inference_steps": 2, "seed": 21}
V6 = "/api/v6/images/text2img"


@pytest.fixture(scope="session")
def files():
    folder = ROOT / "var" / "test-models"
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "checkpoint": model_files.second_checkpoint(folder / "second-sdxl"),
        "lora": model_files.lora(folder / "lora-a", seed=1),
        "lora_b": model_files.lora(folder / "lora-b", seed=2),
        "embedding": model_files.embedding(folder / "emb.safetensors", seed=3),
        "vae": model_files.vae(folder / "other-vae", seed=4),
        "pickle": model_files.pickle_checkpoint(folder / "model.ckpt"),
        "corrupt": _write(folder / "corrupt.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!"),
        "truncated": _truncated(model_files.lora(folder / "lora-a", seed=1), folder / "truncated.safetensors"),
        "wrong_size": _safetensors(folder / "wrong.safetensors", {"x.lora_A.weight": [[4, 4], 0, 8]}, 8),
        "overlapping": _overlapping(model_files.lora(folder / "lora-a", seed=1), folder / "overlap.safetensors"),
        "nested": _with_header(folder / "nested.safetensors", b"[" * 100_000 + b"]" * 100_000),
        "huge_header": _with_header(folder / "huge.safetensors", b"{" + b" " * (9 * 2**20) + b"}"),
    }


def _with_header(path, header: bytes, data: bytes = b""):
    return _write(path, struct.pack("<Q", len(header)) + header + data)


def _safetensors(path, tensors: dict, data_bytes: int):
    """A file whose header says each tensor is [shape, start, end] (F32) over `data_bytes` of data."""
    header = {
        name: {"dtype": "F32", "shape": shape, "data_offsets": [start, end]}
        for name, (shape, start, end) in tensors.items()
    }
    return _with_header(path, json.dumps(header).encode(), b"\0" * data_bytes)


def _overlapping(source, path):
    """A real LoRA whose header points two tensors of one shape at the same bytes."""
    data = source.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    by_shape = {}
    for name, info in header.items():
        if name != "__metadata__":
            by_shape.setdefault(tuple(info["shape"]), []).append(info)
    first, second = next(infos for infos in by_shape.values() if len(infos) > 1)[:2]
    second["data_offsets"] = first["data_offsets"]
    return _with_header(path, json.dumps(header).encode(), data[8 + length :])


def _truncated(source, path):
    """A real file cut short: its header points past the end."""
    data = source.read_bytes()
    return _write(path, data[: len(data) - 100])


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def add(source, model_id, kind, *args):
    call_command("addmodel", str(source), "--id", model_id, "--kind", kind, *args)
    return LibraryModel.objects.get(public_id=model_id)


@pytest.fixture
def library(files, transactional_db):
    return {
        "lora": add(files["lora"], "more_details", "lora"),
        "lora_b": add(files["lora_b"], "film_grain", "lora"),
        "embedding": add(files["embedding"], "myemb", "embedding"),
        "vae": add(files["vae"], "other-vae", "vae"),
    }


def pixels(body) -> np.ndarray:
    assert body["status"] == "success", body
    return np.asarray(decode(body["output"][0]).convert("RGB"), dtype=np.int16)


def differ(a, b) -> bool:
    return np.abs(a - b).mean() > 0.5


def same(a, b) -> bool:
    return np.abs(a - b).max() <= 1


def test_each_field_changes_the_image_and_nothing_leaks_into_the_next_job(api, library):
    base = pixels(api.post(V6, BASE))
    with_lora = api.post(V6, {**BASE, "lora_model": "more_details"})
    assert differ(pixels(with_lora), base)
    assert with_lora["meta"]["loras"] == [{"id": "more_details", "strength": 1.0}]
    assert with_lora["meta"]["not_applied"] == []
    half = pixels(api.post(V6, {**BASE, "lora_model": "more_details", "lora_strength": "0.5"}))
    assert differ(half, pixels(with_lora)) and differ(half, base)
    stacked = api.post(V6, {**BASE, "lora_model": "more_details,film_grain", "lora_strength": "1,0.8"})
    assert stacked["meta"]["loras"] == [{"id": "more_details", "strength": 1.0}, {"id": "film_grain", "strength": 0.8}]
    assert differ(pixels(stacked), pixels(with_lora))
    assert same(pixels(api.post(V6, BASE)), base)  # no adapter left active

    token_prompt = {**BASE, "prompt": "a lighthouse myemb"}
    plain_tokens = pixels(api.post(V6, token_prompt))
    embedded = api.post(V6, {**token_prompt, "embeddings_model": "myemb"})
    assert differ(pixels(embedded), plain_tokens) and embedded["meta"]["embeddings"] == ["myemb"]
    assert same(pixels(api.post(V6, token_prompt)), plain_tokens)  # the token is gone again

    other_vae = api.post(V6, {**BASE, "vae": "other-vae"})
    assert differ(pixels(other_vae), base) and other_vae["meta"]["vae"] == "other-vae"
    assert same(pixels(api.post(V6, BASE)), base)


def test_a_job_after_a_lora_job_equals_a_fresh_predictors_image(api, library, settings):
    api.post(V6, {**BASE, "lora_model": "film_grain,more_details"})
    after = pixels(api.post(V6, BASE))
    fresh = SDXLPredictor(device="cpu")
    params = Text2ImgParams(prompt=BASE["prompt"], width=64, height=64, steps=BASE["num_inference_steps"], seed=21)
    assert same(after, np.asarray(fresh.predict(JobInput(params)).images[0], dtype=np.int16))


def test_v3_paths_use_the_default_model_and_say_so(api, library):
    base = pixels(api.post("/api/v3/text2img", BASE))
    body = api.post("/api/v3/text2img", {**BASE, "lora_model": "more_details", "vae": "other-vae"})
    assert same(pixels(body), base)
    assert {entry["field"] for entry in body["meta"]["not_applied"]} == {"lora_model", "vae"}


def test_unknown_or_not_allowed_models_are_refused_before_anything_is_charged(api, account, library, files):
    user, _ = account
    before = Account.objects.get(user=user).balance
    unknown = api.post(V6, {**BASE, "lora_model": "nope"})
    assert unknown["status"] == "error" and list(unknown["message"]) == ["lora_model"]
    wrong_kind = api.post(V6, {**BASE, "model_id": "more_details"})
    assert list(wrong_kind["message"]) == ["model_id"]
    studio = Plan.objects.create(slug="studio-only", name="Studio", monthly_credits=10)
    add(files["lora"], "studio_lora", "lora", "--plans", studio.slug)
    refused = api.post(V6, {**BASE, "lora_model": "studio_lora"})
    assert refused["message"] == {"lora_model": ["Your plan cannot use the model 'studio_lora'."]}
    assert Account.objects.get(user=user).balance == before and not Job.objects.filter(user=user).exists()


def test_a_models_credit_multiplier_prices_the_job(api, account, library):
    LibraryModel.objects.filter(public_id="more_details").update(credit_multiplier=3)
    body = api.post(V6, {**BASE, "lora_model": "more_details", "samples": 2})
    assert body["status"] == "success"
    reserve = CreditEntry.objects.get(job_id=body["id"], entry_type="reserve")
    assert reserve.amount == -6


def test_model_list_gives_the_plans_models_in_the_hosted_shape(api, account, library, files):
    hidden = Plan.objects.create(slug="hidden-plan", name="Hidden", monthly_credits=10)
    add(files["lora"], "private_lora", "lora", "--private")
    add(files["lora"], "other_plans_lora", "lora", "--plans", hidden.slug)
    for path in ("/api/v3/dreambooth/model_list", "/api/v4/dreambooth/model_list"):
        listed = api.post_raw(path, json={"key": api.key}).json()
        ids = {entry["model_id"]: entry for entry in listed}
        assert {"more_details", "film_grain", "myemb", "other-vae"} <= set(ids)
        assert "private_lora" not in ids and "other_plans_lora" not in ids
        assert ids["more_details"]["model_category"] == "lora" and ids["more_details"]["status"] == "model_ready"
        assert [entry for entry in listed if entry["is_default"]][0]["kind"] == "checkpoint"


def admin_add(client, model_id, kind, source):
    response = client.post(
        "/admin/generation/librarymodel/add/",
        {"public_id": model_id, "model_type": kind, "source": str(source), "credit_multiplier": "1", "is_public": "on"},
    )
    assert response.status_code == 302, response.content.decode()[-2000:]


def test_an_admin_adds_models_and_a_v6_request_uses_them_on_the_worker_holding_the_checkpoint(
    api, account, files, transactional_db
):
    admin = Client()
    admin.force_login(User.objects.create_superuser(email="root@example.com", password="x"))
    admin_add(admin, "second-sdxl", "checkpoint", files["checkpoint"])
    admin_add(admin, "more_details", "lora", files["lora"])
    admin_add(admin, "myemb", "embedding", files["embedding"])
    chosen = {
        **BASE,
        "prompt": "a lighthouse, myemb",
        "model_id": "second-sdxl",
        "lora_model": "more_details",
        "embeddings_model": "myemb",
    }
    refused = api.post(V6, chosen)
    assert refused["message"] == {"model_id": ["No worker serves the model 'second-sdxl' right now; try again later."]}
    process = start_worker(log_name="second", WORKER_CHECKPOINTS="second-sdxl")
    try:
        body = api.post(V6, chosen)
        assert body["status"] == "success", body
        meta = body["meta"]
        assert (meta["model"], meta["loras"], meta["embeddings"]) == (
            "second-sdxl",
            [{"id": "more_details", "strength": 1.0}],
            ["myemb"],
        )
        job = Job.objects.get(pk=body["id"])
        assert job.worker_name.startswith("second-") and job.queue_name.endswith(".second-sdxl")
        plain_second = api.post(V6, {**BASE, "prompt": "a lighthouse, myemb", "model_id": "second-sdxl"})
        assert differ(pixels(body), pixels(plain_second))
        base = api.post(V6, BASE)
        assert not Job.objects.get(pk=base["id"]).worker_name.startswith("second-")
        assert differ(pixels(plain_second), pixels(api.post(V6, {**BASE, "prompt": "a lighthouse, myemb"})))
        load = api.post("/api/v3/system_load")
        assert load["status"] == "ok" and isinstance(load["models"], dict)
    finally:
        stop_worker(process)


@pytest.mark.parametrize(
    ("kind", "source", "reason"),
    [
        ("checkpoint", "pickle", "pickle"),
        ("lora", "pickle", "pickle"),
        ("lora", "corrupt", "not a safetensors file"),
        ("lora", "truncated", "does not fit the file"),
        ("lora", "wrong_size", "does not fit the file"),
        ("lora", "overlapping", "overlap"),
        ("lora", "nested", "unreadable header"),
        ("lora", "huge_header", "header too large"),
        ("embedding", "lora", "not an SDXL embedding"),
        ("lora", "embedding", "not a LoRA"),
        ("vae", "lora", "diffusers folder"),
        ("checkpoint", "vae", "model_index.json"),
    ],
)
def test_bad_files_are_refused_in_the_admin(files, transactional_db, kind, source, reason):
    client = Client()
    client.force_login(User.objects.create_superuser(email="root@example.com", password="x"))
    response = client.post(
        "/admin/generation/librarymodel/add/",
        {
            "public_id": "bad",
            "model_type": kind,
            "source": str(files[source]),
            "credit_multiplier": "1",
            "is_public": "on",
        },
    )
    assert response.status_code == 200 and reason in response.content.decode()
    assert not LibraryModel.objects.filter(public_id="bad").exists()


def test_the_admin_adds_a_lora_with_its_fingerprint(files, transactional_db):
    client = Client()
    client.force_login(User.objects.create_superuser(email="root@example.com", password="x"))
    response = client.post(
        "/admin/generation/librarymodel/add/",
        {"public_id": "ok_lora", "model_type": "lora", "source": str(files["lora"]), "credit_multiplier": "1"},
    )
    assert response.status_code == 302
    entry = LibraryModel.objects.get(public_id="ok_lora")
    assert len(entry.content_hash) == 64 and entry.size_bytes == files["lora"].stat().st_size


def test_model_ids_and_pickles_are_refused_by_addmodel(files, transactional_db):
    with pytest.raises(CommandError, match="pickle"):
        add(files["pickle"], "pickled", "checkpoint")
    with pytest.raises(CommandError, match="Letters, digits"):
        add(files["lora"], "../escape", "lora")
    with pytest.raises(CommandError, match="must stay inside the storage"):
        add("storage:../x.safetensors", "escaping", "lora")
    with pytest.raises(CommandError, match="unreadable header"):
        add(files["nested"], "nested", "lora")
    assert not LibraryModel.objects.exclude(is_default=True).exists()


def test_a_v3_account_without_library_models_still_lists_the_default(live_server, worker, transactional_db):
    _, key = make_account("lister@example.com")
    listed = Api(live_server.url, key).post_raw("/api/v4/dreambooth/model_list", json={"key": key}).json()
    assert [entry["kind"] for entry in listed] == ["checkpoint"] and listed[0]["is_default"]


def test_the_playground_offers_the_plans_models_as_pickers(account, library):
    user, _ = account
    client = Client()
    client.force_login(user)
    page = client.get("/dashboard/playground/").content.decode()
    for option in ('value="more_details"', 'value="myemb"', 'value="other-vae"'):
        assert option in page


def test_every_type_of_model_has_its_model_list_category():
    """model_list answers for every type an admin can add (a segmentation model once made it fail for all)."""
    assert set(MODEL_CATEGORIES) == set(LibraryModel.ModelType.values)
