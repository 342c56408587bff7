"""IP-Adapter (ip_adapter_id, ip_adapter_scale, ip_adapter_image): a library IP-Adapter prompts with a
picture on the paths that choose models; a job without one gets the image it gets on a worker that never
loaded one."""

import shutil

import pytest
import torch
from django.core.management import CommandError, call_command
from PIL import Image
from safetensors.torch import load_file, save_file

from billing.models import Account
from generation.models import Job
from tests import model_files
from tests.conftest import ROOT
from tests.test_controlnet import BASE as CONTROLNET
from tests.test_controlnet import data_url
from tests.test_model_library import add, pixels, same

TEXT2IMG = {"prompt": "a lighthouse", "width": 64, "height": 64, "num_inference_steps": 2, "seed": 21}
RED, BLUE = data_url(Image.new("RGB", (64, 64), (220, 30, 30))), data_url(Image.new("RGB", (64, 64), (20, 40, 230)))


@pytest.fixture(scope="session")
def ip_adapter_folder():
    return model_files.ip_adapter(ROOT / "var" / "test-models" / "ip-adapter", seed=1)


@pytest.fixture
def ip_adapter(ip_adapter_folder, transactional_db):
    add(model_files.controlnet(ROOT / "var" / "test-models" / "controlnet-a", seed=1), "canny", "controlnet")
    return add(ip_adapter_folder, "ip-plus", "ip_adapter")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v6/images/text2img", TEXT2IMG),
        ("/api/v7/images/image-to-image", {**TEXT2IMG, "init_image": RED, "strength": 0.8}),
        ("/api/v6/images/controlnet", {**CONTROLNET, "controlnet_conditioning_scale": "0.1"}),
    ],
)
def test_the_image_prompt_steers_and_a_job_without_it_is_untouched(api, ip_adapter, path, body):
    base = pixels(api.post(path, body))
    red = api.post(path, {**body, "ip_adapter_id": "ip-plus", "ip_adapter_image": RED})
    blue = pixels(api.post(path, {**body, "ip_adapter_id": "ip-plus", "ip_adapter_image": BLUE, "ip_adapter_scale": 1}))
    # (under the tiny ControlNet, whose effect saturates, the change is small: compared exactly)
    assert not same(pixels(red), base) and not same(blue, pixels(red))
    meta = red["meta"]
    assert meta["ip_adapter_id"] == "ip-plus" and meta["ip_adapter_scale"] == 0.6
    assert meta["ip_adapter_image"].startswith("http") and meta["not_applied"] == []
    assert same(pixels(api.post(path, body)), base)  # the adapter's layers are out again


def test_v3_paths_name_the_fields_they_do_not_apply(api, ip_adapter):
    base = pixels(api.post("/api/v3/text2img", TEXT2IMG))
    body = api.post("/api/v3/text2img", {**TEXT2IMG, "ip_adapter_id": "ip-plus", "ip_adapter_image": RED})
    assert same(pixels(body), base)
    assert {entry["field"] for entry in body["meta"]["not_applied"]} == {"ip_adapter_id", "ip_adapter_image"}


def test_refusals_come_before_any_charge(api, account, ip_adapter):
    user, _ = account
    before = Account.objects.get(user=user).balance
    path = "/api/v6/images/text2img"
    cases = [
        ({"ip_adapter_id": "nope", "ip_adapter_image": RED}, "ip_adapter_id"),
        ({"ip_adapter_id": "ip-plus"}, "ip_adapter_image"),
        ({"ip_adapter_image": RED}, "ip_adapter_id"),
        ({"model_id": "ip-plus"}, "model_id"),
    ]
    for fields, field in cases:
        answer = api.post(path, {**TEXT2IMG, **fields})
        assert answer["status"] == "error" and list(answer["message"]) == [field], answer
    assert Account.objects.get(user=user).balance == before and not Job.objects.filter(user=user).exists()


def test_the_library_lists_it_and_refuses_what_is_not_one(api, ip_adapter, ip_adapter_folder, tmp_path):
    listed = {
        entry["model_id"]: entry
        for entry in api.post_raw("/api/v4/dreambooth/model_list", json={"key": api.key}).json()
    }
    assert listed["ip-plus"]["model_category"] == "ip_adapter"
    with pytest.raises(CommandError, match="image_encoder/config.json is missing"):
        call_command("addmodel", str(tmp_path), "--id", "empty", "--kind", "ip_adapter")
    lora = model_files.lora(ROOT / "var" / "test-models" / "lora-a", seed=1)
    with pytest.raises(CommandError, match="must be a local diffusers folder"):
        call_command("addmodel", str(lora), "--id", "lora-as-ip", "--kind", "ip_adapter")


def test_an_adapter_that_fails_to_load_fails_its_job_and_leaves_the_next_untouched(api, ip_adapter, tmp_path):
    """Weights whose layers pass the library's check but not the UNet's (a to_v_ip of another height):
    the job fails with a reason, is refunded, and the next job is the base image."""
    broken = tmp_path / "broken-ip"
    shutil.copytree(ROOT / "var" / "test-models" / "ip-adapter", broken)
    tensors = load_file(broken / "ip-adapter.safetensors")
    name = next(key for key in tensors if key.endswith("to_v_ip.weight"))
    tensors[name] = torch.zeros(tensors[name].shape[0] + 1, tensors[name].shape[1])
    save_file(tensors, broken / "ip-adapter.safetensors")
    add(broken, "broken-ip", "ip_adapter")
    path = "/api/v6/images/text2img"
    base = pixels(api.post(path, TEXT2IMG))
    failed = api.post(path, {**TEXT2IMG, "ip_adapter_id": "broken-ip", "ip_adapter_image": RED})
    assert failed["status"] == "failed" and "cannot be loaded" in failed["message"]
    assert same(pixels(api.post(path, TEXT2IMG)), base)
    assert not same(pixels(api.post(path, {**TEXT2IMG, "ip_adapter_id": "ip-plus", "ip_adapter_image": RED})), base)
