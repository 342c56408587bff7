"""The OpenAI Images API front-end (`/v1`): what Open WebUI and LibreChat send, over plain HTTP, answered in
OpenAI's shapes; the jobs are ordinary jobs (history, credits)."""

import base64
import io

import numpy as np
import pytest
import requests
from PIL import Image

from billing.models import Account, CreditEntry
from generation.models import Job
from tests.conftest import make_account

SMALL = {"size": "64x64", "quality": "low"}


@pytest.fixture
def openai(api, settings):
    settings.OPENAI_QUALITY_STEPS = {**settings.OPENAI_QUALITY_STEPS, "low": 2}
    return Client(api.base_url, api.key)


class Client:
    def __init__(self, base_url: str, key: str):
        self.base_url, self.key = base_url, key

    def post(self, path: str, key: str | None = None, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return requests.post(self.base_url + "/v1" + path, headers=headers, timeout=330, **kwargs)

    def get(self, path: str) -> requests.Response:
        return requests.get(self.base_url + "/v1" + path, headers={"Authorization": f"Bearer {self.key}"}, timeout=30)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def picture(item: dict) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(item["b64_json"])))


def test_generations_answer_in_each_models_default_format_and_as_asked(openai, account, client):
    """OpenAI's default `response_format` depends on the model: b64_json for the gpt-image models (their
    only format), url for dall-e-2 (the default model) and dall-e-3."""
    answer = openai.post(
        "/images/generations", json={"prompt": "a lighthouse", "n": 2, **SMALL, "model": "gpt-image-1"}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert isinstance(body["created"], int) and len(body["data"]) == 2
    assert [set(item) for item in body["data"]] == [{"b64_json", "revised_prompt"}] * 2
    assert picture(body["data"][0]).size == (64, 64)

    for model in ("dall-e-3", None):
        urls = openai.post("/images/generations", json={"prompt": "a lighthouse", **SMALL, "model": model}).json()
        assert set(urls["data"][0]) == {"url", "revised_prompt"}
        image = Image.open(io.BytesIO(requests.get(urls["data"][0]["url"], timeout=30).content))
        assert image.size == (64, 64)
    b64 = {"response_format": "b64_json"}
    jpeg = openai.post("/images/generations", json={"prompt": "a lighthouse", **SMALL, **b64, "output_format": "jpeg"})
    assert picture(jpeg.json()["data"][0]).format == "JPEG"
    wide = openai.post("/images/generations", json={"prompt": "a lighthouse", **SMALL, **b64, "size": "2048x1024"})
    assert picture(wide.json()["data"][0]).size == (1024, 512)  # fitted in 1024, keeping its shape

    user, _ = account
    jobs = Job.objects.filter(user=user).order_by("id")
    assert [job.kind for job in jobs] == ["text2img"] * 5 and all(job.api_key_id for job in jobs)
    assert jobs[0].parameters.steps == 2 and jobs[0].parameters.samples == 2
    assert CreditEntry.objects.get(job=jobs[0], entry_type="reserve").amount == -2
    client.force_login(user)  # the dashboard's history shows them like any job
    history = client.get("/dashboard/history/").content.decode()
    assert all(f"<strong>#{job.id}</strong> text2img" in history for job in jobs)


def test_errors_come_in_openais_shape_and_status(openai, account):
    bad_key = openai.post("/images/generations", key="sk-wrong", json={"prompt": "x"})
    assert bad_key.status_code == 401 and bad_key.json()["error"]["code"] == "invalid_api_key"
    assert set(bad_key.json()["error"]) == {"message", "type", "param", "code"}
    unknown = openai.post("/images/generations", json={"prompt": "x", **SMALL, "model": "nope"})
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "model"
    assert unknown.json()["error"]["code"] == "model_not_found"
    for fields, param in (
        ({"size": "big"}, "size"),
        ({"n": 11}, "n"),
        ({"size": "0x0"}, "size"),
        ({"quality": "ultra"}, "quality"),
        ({"response_format": "gif"}, "response_format"),
        ({"prompt": ""}, "prompt"),
    ):
        answer = openai.post("/images/generations", json={"prompt": "x", **SMALL, **fields})
        assert answer.status_code == 400 and answer.json()["error"]["param"] == param, (fields, answer.text)
    user, _ = account
    Account.objects.filter(user=user).update(balance=0)
    broke = openai.post("/images/generations", json={"prompt": "x", **SMALL})
    assert broke.status_code == 429 and broke.json()["error"]["code"] == "insufficient_quota"
    assert not Job.objects.filter(user=user).exists()
    assert requests.get(openai.base_url + "/v1/nothing", timeout=30).json()["error"]["code"] == "unknown_url"


def test_edits_repaint_the_transparent_pixels_and_keep_the_rest(openai):
    start = Image.effect_noise((64, 64), 80).convert("RGB")
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 32, 64))  # the left half transparent: repainted
    answer = openai.post(
        "/images/edits",
        data={"prompt": "a sofa", "n": "1", "quality": "low", "response_format": "b64_json"},
        files={"image": ("room.png", png(start), "image/png"), "mask": ("mask.png", png(mask), "image/png")},
    )
    assert answer.status_code == 200, answer.text
    output = np.asarray(picture(answer.json()["data"][0]).convert("RGB"), dtype=np.int16)
    original = np.asarray(start, dtype=np.int16)
    assert output.shape == (64, 64, 3)
    assert np.array_equal(output[:, 32:], original[:, 32:]) and np.abs(output[:, :32] - original[:, :32]).mean() > 5

    unmasked = openai.post(
        "/images/edits",
        data={"prompt": "a sofa", "quality": "low", "response_format": "url"},
        files={"image[]": ("room.png", png(start), "image/png")},
    )
    assert unmasked.status_code == 200 and Job.objects.order_by("-id").first().kind == "img2img"
    opaque_mask = openai.post(
        "/images/edits",
        data={"prompt": "a sofa", "quality": "low"},
        files={"image": ("a.png", png(start), "image/png"), "mask": ("m.png", png(start), "image/png")},
    )
    assert opaque_mask.status_code == 400 and opaque_mask.json()["error"]["param"] == "mask"


def test_variations_make_img2img_jobs_without_a_prompt(openai):
    answer = openai.post(
        "/images/variations",
        data={"n": "2", "quality": "low"},
        files={"image": ("a.png", png(Image.new("RGB", (64, 64), (200, 40, 40))), "image/png")},
    )
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["data"]) == 2
    job = Job.objects.order_by("-id").first()
    assert job.kind == "img2img" and job.parameters.prompt == ""


def test_models_are_the_checkpoints_the_plan_may_use(openai):
    listed = openai.get("/models").json()
    assert listed["object"] == "list" and listed["data"][0]["object"] == "model"
    model_id = listed["data"][0]["id"]
    assert openai.get(f"/models/{model_id}").json()["id"] == model_id
    missing = openai.get("/models/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def test_front_end_requests_are_counted_in_the_metrics(openai, live_server, settings):
    settings.METRICS_TOKEN = "metrics-secret"
    assert openai.post("/images/generations", json={"prompt": "x", **SMALL}).status_code == 200
    assert openai.post("/images/generations", json={"prompt": "x", **SMALL, "n": 11}).status_code == 400
    a1111 = requests.get(live_server.url + "/sdapi/v1/samplers", auth=("u", openai.key), timeout=30)
    assert a1111.status_code == 200
    text = requests.get(
        live_server.url + "/metrics", headers={"Authorization": "Bearer metrics-secret"}, timeout=10
    ).text
    for counted in (
        '"openai_generations",status="success"',
        '"openai_generations",status="error"',
        '"a1111_samplers",status="success"',
    ):
        assert f"sdxl_api_requests_total{{endpoint={counted}}}" in text


def test_another_accounts_key_sees_its_own_jobs_only(openai, live_server):
    openai.post("/images/generations", json={"prompt": "mine", **SMALL})
    _, other_key = make_account("bob@example.com")
    other = Client(live_server.url, other_key)
    assert other.post("/images/generations", json={"prompt": "his", **SMALL}).status_code == 200
    assert Job.objects.filter(user__email="bob@example.com").count() == 1
