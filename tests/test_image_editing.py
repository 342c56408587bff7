"""The hosted image_editing surface (/api/v6/image_editing/, /api/v1/image_editing/,
/api/v1/enterprise/image_editing/): outpaint, object removal, inpaint, base64_to_url, and an honest answer
for the operations this deployment does not offer."""

import base64
import io
from datetime import timedelta

import numpy as np
import onnx
import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.utils import timezone
from PIL import Image

from billing.models import Account
from generation.models import Job, LibraryModel, Upload
from tests import model_files
from tests.conftest import ROOT
from tests.test_model_library import add
from tests.test_text2img import decode

FAMILIES = ["/api/v6/image_editing/", "/api/v1/image_editing/", "/api/v1/enterprise/image_editing/"]
NOT_OFFERED = ["fashion", "head_shot", "face_gen", "flux_headshot", "qwen_edit", "caption", "mask_creator"]


def data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.mark.parametrize("family", FAMILIES)
def test_outpaint_gives_the_asked_size_and_keeps_the_image_inside_the_overlap(api, family):
    photo = Image.effect_noise((64, 48), 80).convert("RGB")
    body = api.post(
        family + "outpaint",
        {"image": data_url(photo), "prompt": "a wide landscape", "width": 128, "height": 96, "overlap_width": 8,
         "num_inference_steps": 3, "seed": 4},
    )  # fmt: skip
    assert body["status"] == "success", body
    assert body["proxy_links"] == body["output"] and body["meta"]["overlap_width"] == 8
    output = array(decode(body["output"][0]))
    assert output.shape == (96, 128, 3)
    left, top = (128 - 64) // 2, (96 - 48) // 2
    inside = output[top + 8 : top + 48 - 8, left + 8 : left + 64 - 8]
    assert np.array_equal(inside, array(photo)[8:-8, 8:-8])  # kept exactly, away from the seams
    assert np.abs(output[:, :left].astype(float) - 128).mean() < 127  # the new area is painted
    assert Job.objects.get(pk=body["id"]).kind == "outpaint"


def test_outpaint_scales_a_larger_image_down_to_the_canvas(api):
    body = api.post(
        FAMILIES[0] + "outpaint",
        {"image": data_url(Image.new("RGB", (256, 64), (10, 200, 30))), "prompt": "x", "width": 64, "height": 64,
         "num_inference_steps": 2},
    )  # fmt: skip
    assert decode(body["output"][0]).size == (64, 64)


def test_object_removal_changes_only_the_masked_pixels(api, settings):
    photo = Image.effect_noise((64, 64), 80).convert("RGB")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (20, 20, 44, 44))
    settings.OBJECT_REMOVAL_STEPS = 3
    body = api.post(FAMILIES[0] + "object_removal", {"init_image": data_url(photo), "mask_image": data_url(mask)})
    assert body["status"] == "success", body
    output, original = array(decode(body["output"][0])), array(photo)
    outside = np.asarray(mask) == 0
    assert np.array_equal(output[outside], original[outside])
    assert np.abs(output[~outside] - original[~outside]).mean() > 5
    assert body["meta"]["prompt"] == settings.OBJECT_REMOVAL_PROMPT
    assert body["meta"]["negative_prompt"] == settings.OBJECT_REMOVAL_NEGATIVE_PROMPT


def test_image_editing_inpaint_has_the_editing_guidance_range(api):
    photo = data_url(Image.new("RGB", (64, 64), (200, 40, 40)))
    body = api.post(
        FAMILIES[1] + "inpaint",
        {"prompt": "a sofa", "init_image": photo, "mask_image": photo, "guidance_scale": 9, "num_inference_steps": 2},
    )
    assert body["status"] == "success" and body["meta"]["guidance_scale"] == 5 and body["meta"]["strength"] == 0.7


def test_base64_to_url_stores_an_image_that_later_requests_send_by_url(api, account, settings):
    user, _ = account
    balance = Account.objects.get(user=user).balance
    photo = Image.new("RGB", (96, 64), (30, 90, 200))
    stored = api.post(FAMILIES[0] + "base64_to_url", {"init_image": base64.b64encode(_png(photo)).decode()})
    assert stored["status"] == "success" and stored["output"] == stored["proxy_links"] and len(stored["output"]) == 1
    assert np.array_equal(array(decode(stored["output"][0])), array(photo))
    assert Account.objects.get(user=user).balance == balance  # free
    img2img = api.post("/api/v6/images/img2img", {"prompt": "a boat", "init_image": stored["output"][0], "steps": 2})
    assert img2img["status"] == "success" and decode(img2img["output"][0]).size == (96, 64)
    assert Upload.objects.get(pk=stored["id"]).user == user

    assert api.post(FAMILIES[0] + "base64_to_url", {"init_image": "https://example.com/a.png"})["message"] == {
        "init_image": ["The init image must be base64 (it is already a URL)."]
    }
    settings.UPLOAD_QUOTA_BYTES = Upload.objects.get(pk=stored["id"]).size_bytes + 10
    full = api.post(FAMILIES[0] + "base64_to_url", {"init_image": data_url(photo)})
    assert full["status"] == "error" and full["message"].startswith("Your upload storage is full")


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("family", FAMILIES)
def test_operations_not_offered_are_said_so_and_cost_nothing(api, account, family):
    user, _ = account
    balance = Account.objects.get(user=user).balance
    for operation in [*NOT_OFFERED, "whatever"]:
        response = api.post_raw(family + operation, json={"key": api.key, "init_image": "x"})
        assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
        body = response.json()
        assert body["status"] == "error" and f"{operation!r} is not offered on this deployment" in body["message"]
        offered = "inpaint, object_removal, outpaint, img_mixer, removebg_mask, super_resolution, base64_to_url"
        assert offered in body["message"]
    assert Account.objects.get(user=user).balance == balance and not Job.objects.filter(user=user).exists()


def test_refusals_come_before_any_charge(api, account):
    user, _ = account
    assert list(api.post(FAMILIES[0] + "outpaint", {"prompt": "x"})["message"]) == ["image"]
    assert list(
        api.post(FAMILIES[0] + "object_removal", {"init_image": data_url(Image.new("RGB", (8, 8)))})["message"]
    ) == ["mask_image"]
    assert not Job.objects.filter(user=user).exists()


MIX = {"prompt": "a poster", "width": 64, "height": 64, "num_inference_steps": 2, "seed": 8}
RED, BLUE = (data_url(Image.new("RGB", (64, 64), color)) for color in ((220, 30, 30), (20, 40, 230)))


def test_img_mixer_without_an_ip_adapter_says_what_to_install(api, account):
    user, _ = account
    body = api.post(FAMILIES[0] + "img_mixer", {**MIX, "init_image": [RED, BLUE]})
    assert body["status"] == "error" and "--kind ip_adapter" in body["message"]["init_image"][0]
    assert not Job.objects.filter(user=user).exists()


def test_img_mixer_mixes_the_images_through_the_librarys_ip_adapter(api, transactional_db):
    add(model_files.ip_adapter(ROOT / "var" / "test-models" / "ip-adapter", seed=1), "ip-plus", "ip_adapter")
    red = api.post(FAMILIES[0] + "img_mixer", {**MIX, "init_image": [RED]})
    mixed = api.post(FAMILIES[2] + "img_mixer", {**MIX, "init_image": [RED, BLUE]})
    assert mixed["status"] == "success", mixed
    assert mixed["meta"]["ip_adapter_id"] == "ip-plus" and len(mixed["meta"]["init_image"]) == 2
    assert np.abs(array(decode(mixed["output"][0])) - array(decode(red["output"][0]))).mean() > 0.5
    assert Job.objects.get(pk=mixed["id"]).kind == "img_mixer"
    extra = api.post(FAMILIES[0] + "img_mixer", {**MIX, "init_image": [RED], "ip_adapter_image": BLUE})
    assert [entry["field"] for entry in extra["meta"]["not_applied"]] == ["ip_adapter_image"]
    too_many = api.post(FAMILIES[0] + "img_mixer", {**MIX, "init_image": [RED] * 5})
    assert list(too_many["message"]) == ["init_image"]


def subject_on_dark(size=(96, 64), box=(30, 16, 66, 48)) -> Image.Image:
    image = Image.new("RGB", size, (15, 15, 20))
    image.paste((240, 235, 230), box)
    return image


def test_removebg_without_a_model_says_what_to_install(api, account):
    user, _ = account
    body = api.post(FAMILIES[0] + "removebg_mask", {"image": data_url(subject_on_dark())})
    assert body["status"] == "error" and "--kind segmentation" in body["message"]["image"][0]
    assert not Job.objects.filter(user=user).exists()


def test_removebg_cuts_out_the_subject_or_gives_its_mask(api, transactional_db, tmp_path):
    add(model_files.segmenter(tmp_path / "tiny-u2net.onnx"), "u2net", "segmentation")
    photo = subject_on_dark()
    body = api.post(FAMILIES[0] + "removebg_mask", {"image": data_url(photo), "alpha_matting": "yes"})
    assert body["status"] == "success", body
    cutout = decode(body["output"][0])
    assert cutout.mode == "RGBA" and cutout.size == (96, 64)
    alpha = np.asarray(cutout.getchannel("A"))
    assert alpha[32, 48] > 200 and alpha[5, 5] < 60  # the subject kept, the background transparent
    assert np.array_equal(np.asarray(cutout.convert("RGB"))[32, 48], np.asarray(photo)[32, 48])
    assert [entry["field"] for entry in body["meta"]["not_applied"]] == ["alpha_matting"]
    mask = decode(api.post(FAMILIES[2] + "removebg_mask", {"image": data_url(photo), "only_mask": "yes"})["output"][0])
    assert mask.mode == "L" and np.asarray(mask)[32, 48] > 200 and np.asarray(mask)[5, 5] < 60
    inverse = api.post(
        FAMILIES[1] + "removebg_mask", {"image": data_url(photo), "only_mask": True, "inverse_mask": True}
    )
    inverted = np.asarray(decode(inverse["output"][0]))
    assert inverted[32, 48] < 60 and inverted[5, 5] > 200
    hard = api.post(FAMILIES[0] + "removebg_mask", {"image": data_url(photo), "only_mask": 1, "post_process_mask": 1})
    assert set(np.unique(np.asarray(decode(hard["output"][0])))) <= {0, 255}


def test_a_model_that_onnxruntime_cannot_load_fails_the_job_with_the_reason(api, transactional_db, tmp_path):
    """A library entry from before models were checked at add time: the job fails, the worker lives on."""
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07" + b"\xff" * 64)  # starts like an ONNX model, is not one
    LibraryModel.objects.create(
        public_id="broken", model_type="segmentation", source=str(broken), content_hash="b" * 64
    )
    body = api.post(FAMILIES[0] + "removebg_mask", {"image": data_url(subject_on_dark())})
    assert body["status"] == "failed" and "'broken' cannot be loaded" in body["message"]
    assert api.post("/api/v3/text2img", {"prompt": "still here", "width": 64, "height": 64, "num_inference_steps": 1})[
        "status"
    ] in ("success", "processing")


def test_the_library_takes_only_onnx_segmentation_models(transactional_db, tmp_path):
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"PK\x03\x04 not onnx at all")
    with pytest.raises(CommandError, match="is not an ONNX model"):
        call_command("addmodel", str(fake), "--id", "fake", "--kind", "segmentation")
    with pytest.raises(CommandError, match="must be an .onnx file"):
        call_command("addmodel", str(tmp_path / "model.safetensors"), "--id", "weights", "--kind", "segmentation")
    starts_like_one = tmp_path / "starts-like-one.onnx"
    starts_like_one.write_bytes(b"\x08\x07" + b"\xff" * 64)
    with pytest.raises(CommandError, match="is not an ONNX model"):
        call_command("addmodel", str(starts_like_one), "--id", "fake", "--kind", "segmentation")


def _segmenter_graph(path, side=64, weight=None):
    """A one-node ONNX graph with U2-Net's input (1x3xSxS) multiplying it by one weight."""
    image = onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 3, side, side])
    out = onnx.helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, [1, 3, side, side])
    weight = weight or onnx.numpy_helper.from_array(np.ones((1,), np.float32), "w")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Mul", ["input", "w"], ["out"])], "g", [image], [out], [weight]
    )
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), path)
    return path


def _external(location: str):
    weight = onnx.TensorProto(name="w", data_type=onnx.TensorProto.FLOAT, dims=[1])
    weight.data_location = onnx.TensorProto.EXTERNAL
    for key, value in {"location": location, "offset": "0", "length": "4"}.items():
        weight.external_data.add(key=key, value=value)
    return weight


@pytest.mark.parametrize(
    "hostile, refusal",
    [
        (lambda folder: _segmenter_graph(folder / "m.onnx", weight=_external("../../../etc/passwd")), "external data"),
        (lambda folder: _segmenter_graph(folder / "m.onnx", weight=_external("/etc/passwd")), "external data"),
        (
            lambda folder: (
                (folder / "w.bin").symlink_to("/etc/passwd"),
                _segmenter_graph(folder / "m.onnx", weight=_external("w.bin")),
            )[1],
            "external data",
        ),
        (  # 40 TB declared, four bytes held
            lambda folder: _segmenter_graph(
                folder / "m.onnx",
                weight=onnx.TensorProto(
                    name="w", data_type=onnx.TensorProto.FLOAT, dims=[10**13], raw_data=b"\0\0\0\0"
                ),
            ),
            "declares 10000000000000 values for 'w' but holds 1",
        ),
        (lambda folder: _segmenter_graph(folder / "m.onnx", side=6000), "6000x6000 input: at most 2048 a side"),
    ],
    ids=["traversal", "absolute", "symlink", "huge-initializer", "huge-input"],
)
def test_segmentation_models_are_checked_by_onnx_when_added(transactional_db, tmp_path, hostile, refusal):
    """Each was once taken on its first byte and failed (or took gigabytes) only at a user's first job."""
    path = hostile(tmp_path)
    with pytest.raises(CommandError, match=refusal):
        call_command("addmodel", str(path), "--id", "hostile", "--kind", "segmentation")
    assert not LibraryModel.objects.exists()
    add(_segmenter_graph(tmp_path / "plain.onnx"), "plain", "segmentation")  # the same graph, sound


def test_uploads_expire_after_the_retention_days(api, account, settings):
    user, _ = account
    stored = api.post(FAMILIES[0] + "base64_to_url", {"init_image": data_url(Image.new("RGB", (64, 64)))})
    upload = Upload.objects.get(pk=stored["id"])
    assert default_storage.exists(upload.name)
    Upload.objects.filter(pk=upload.pk).update(
        created_at=timezone.now() - timedelta(days=settings.UPLOAD_RETENTION_DAYS + 1)
    )
    out = io.StringIO()
    call_command("expire_outputs", stdout=out)
    assert "Deleted 1 upload(s)" in out.getvalue()
    assert not Upload.objects.filter(user=user).exists() and not default_storage.exists(upload.name)


def test_an_admin_sees_and_deletes_uploads(api, account, admin_client):
    stored = api.post(FAMILIES[0] + "base64_to_url", {"init_image": data_url(Image.new("RGB", (64, 64)))})
    upload = Upload.objects.get(pk=stored["id"])
    listing = admin_client.get("/admin/generation/upload/").content.decode()
    assert upload.name in listing and "alice@example.com" in listing
    admin_client.post(f"/admin/generation/upload/{upload.id}/delete/", {"post": "yes"})
    assert not Upload.objects.filter(pk=upload.id).exists() and not default_storage.exists(upload.name)
