"""Existing clients work unmodified: every API family the hosted service's SDK, CLI and older wrappers
call, the key wherever they put it, fields in the query string, absolute-form request targets."""

import base64
import http.client
import json
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import png_bytes
from tests.http_server import Route

TINY = {"width": 64, "height": 64, "num_inference_steps": 1}

# What each family's clients send (their own field spellings), and where their fetch path is.
GENERATION_FAMILIES = [
    # the current SDK: v6 images, numbers as strings, the later fields with their defaults
    (
        "/api/v6/images/text2img",
        {
            "prompt": "a fox",
            "negative_prompt": None,
            "width": "64",
            "height": "64",
            "samples": "1",
            "steps": "1",
            "safety_checker": "no",
            "enhance_prompt": "no",
            "seed": None,
            "guidance_scale": 7.5,
            "multi_lingual": "no",
            "panorama": "no",
            "self_attention": "no",
            "upscale": "no",
            "embeddings_model": None,
            "lora_model": None,
            "tomesd": "no",
            "use_karras_sigmas": "yes",
            "vae": None,
            "lora_strength": None,
            "webhook": None,
            "track_id": None,
        },
        "/api/v6/images/fetch/",
    ),
    (
        "/api/v6/realtime/text2img",
        {"prompt": "a fox", **TINY, "safety_checker": False, "base64": False},
        "/api/v6/realtime/fetch/",
    ),
    ("/api/v1/enterprise/realtime/text2img", {"prompt": "a fox", **TINY}, "/api/v1/enterprise/realtime/fetch/"),
    ("/api/v1/enterprise/images/text2img", {"prompt": "a fox", **TINY}, "/api/v1/enterprise/images/fetch/"),
    ("/api/v7/images/text-to-image", {"prompt": "a fox", **TINY}, "/api/v7/images/fetch/"),
    ("/api/v4/dreambooth", {"prompt": "a fox", **TINY}, "/api/v4/dreambooth/fetch/"),
    ("/api/v3/text2img", {"prompt": "a fox", **TINY}, "/api/v3/fetch/"),
]


def queued_then_fetched(api, path, body, fetch_path, headers=None):
    """Submit with no wait, check `fetch_result` points into the family, fetch there until done."""
    first = api.post(path, {**body, "instant_response": "yes"}, headers=headers)
    assert first["status"] == "processing", first  # answered as it was admitted, before any worker ran it
    assert urlsplit(first["fetch_result"]).path == f"{fetch_path}{first['id']}"
    assert first["fetch_result"].startswith(api.base_url)
    for _ in range(600):
        done = api.post(f"{fetch_path}{first['id']}", headers=headers)
        if done["status"] != "processing":
            break
    assert done["status"] == "success", done
    assert done["id"] == first["id"]
    return done


@pytest.mark.parametrize(("path", "body", "fetch_path"), GENERATION_FAMILIES)
def test_each_generation_family_answers_and_fetches_in_its_own_family(api, path, body, fetch_path):
    done = queued_then_fetched(api, path, body, fetch_path)
    assert isinstance(done["output"], list) and done["output"][0].endswith("-0.png")
    assert (done["meta"]["W"], done["meta"]["H"]) == (64, 64)


@pytest.mark.parametrize(
    ("path", "fetch_path"),
    [
        ("/api/v6/images/img2img", "/api/v6/images/fetch/"),
        ("/api/v6/realtime/inpaint", "/api/v6/realtime/fetch/"),
        ("/api/v7/images/image-to-image", "/api/v7/images/fetch/"),
        ("/api/v7/images/inpaint", "/api/v7/images/fetch/"),
        ("/api/v1/enterprise/images/inpaint", "/api/v1/enterprise/images/fetch/"),
    ],
)
def test_image_operations_of_the_later_families(api, image_url, path, fetch_path):
    body = {"prompt": "watercolor", "init_image": image_url, "mask_image": image_url, "strength": 0.5, **TINY}
    done = queued_then_fetched(api, path, body, fetch_path)
    assert done["meta"]["init_image"] == image_url


@pytest.fixture
def small_image(http_server):
    http_server.routes["/small.png"] = Route(body=png_bytes((40, 30)))
    return f"{http_server.url}/small.png"


@pytest.mark.parametrize(
    ("path", "body", "fetch_path"),
    [
        (
            "/api/v6/image_editing/super_resolution",
            {"model_id": "ultra_resolution", "scale": 2, "face_enhance": False},
            "/api/v6/image_editing/fetch/",
        ),
        ("/api/v1/image_editing/super_resolution", {"scale": 2, "face_enhance": False}, "/api/v1/image_editing/fetch/"),
    ],
)
def test_image_editing_families_upscale_and_answer_one_url(api, small_image, path, body, fetch_path):
    field = "init_image" if "v6" in path else "url"
    done = queued_then_fetched(api, path, {field: small_image, **body}, fetch_path)
    assert isinstance(done["output"], str) and done["output"].endswith("-0.png")


@pytest.mark.parametrize("path", ["/api/v3/system_details", "/api/v1/enterprise/images/system_details"])
def test_system_details_is_system_load_plus_the_workers(api, path):
    body = api.post(path)
    assert body["status"] == "ok" and isinstance(body["queue_num"], int) and isinstance(body["queue_time"], int)
    assert body["workers"] and {"device", "model", "queues", "busy"} <= set(body["workers"][0])
    assert "host" not in body["workers"][0] and "pid" not in body["workers"][0]


def test_an_unknown_path_of_an_api_version_says_it_is_not_offered_and_what_is(api):
    body = api.post("/api/v6/xyz")
    assert body["status"] == "error" and body["message"].startswith("The operation 'xyz' is not offered")
    assert "images/text2img" in body["message"] and "image_editing/outpaint" in body["message"]
    assert api.post("/api/xyz")["message"] == "Unknown endpoint: POST /api/xyz"  # not the hosted API's at all
    assert api.post("/api/v3/fetch/987654321")["message"] == "Request not found"


ENTERPRISE = "/api/v1/enterprise/txt2img"


def test_the_enterprise_sdks_txt2img_family_is_served(api, small_image):
    """The enterprise SDK's EPTxt2Img calls, host changed only: its generations, fetch and listings are
    the operations; its server and model administration answers that it is not offered here."""
    made = api.post(f"{ENTERPRISE}/text2img", {"prompt": "x", "width": 64, "height": 64, "steps": 2})
    assert made["status"] == "success", made
    assert api.post(f"{ENTERPRISE}/fetch", {"request_id": made["id"]})["status"] == "success"
    upscaled = api.post(f"{ENTERPRISE}/super_resolution", {"url": small_image, "scale": 2})
    assert upscaled["status"] in ("success", "processing") and "output" in upscaled
    assert api.post(f"{ENTERPRISE}/system_details")["workers"]
    assert "DDIMScheduler" in api.post(f"{ENTERPRISE}/schedulers_list")["data"]
    models = api.post(f"{ENTERPRISE}/get_all_models")
    default = next(entry["model_id"] for entry in models if entry["is_default"])
    assert api.post(f"{ENTERPRISE}/verify_model", {"model_id": default})["status"] == "success"
    assert api.post(f"{ENTERPRISE}/verify_model", {"model_id": "nope"})["status"] == "error"
    encoded = base64.b64encode(png_bytes()).decode()
    uploaded = api.post(f"{ENTERPRISE}/upload_image", {"base64_image": encoded, "image_type": "png"})
    assert uploaded["status"] == "success" and uploaded["output"][0].startswith(api.base_url)
    for admin in ("load_model", "load_model_v2", "restart_server", "update_server", "clear_cache", "delete_model"):
        refused = api.post(f"{ENTERPRISE}/{admin}", {"model_id": "x", "url": "https://example.com/m"})
        assert refused["status"] == "error" and f"'enterprise/txt2img/{admin}' is not offered" in refused["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v6/interior/make",
        "/api/v6/deepfake/single_face_swap",
        "/api/v6/images/model_reload",
        "/api/v3/nsfw_image_check",
    ],
)
def test_the_hosted_services_other_paths_say_they_are_not_offered(api, path):
    response = api.post_raw(path, json={"key": api.key, "init_image": "x"})
    assert response.status_code == 200 and response.json()["status"] == "error"
    assert "is not offered on this deployment" in response.json()["message"]


def test_v6_base64_to_url_takes_a_base64_string(api):
    body = api.post("/api/v6/base64_to_url", {"base64_string": base64.b64encode(png_bytes()).decode()})
    assert body["status"] == "success" and body["output"][0].startswith(api.base_url + "/media/")


@pytest.mark.parametrize(
    "headers",
    [
        lambda key: {"Authorization": f"Bearer {key}"},
        lambda key: {"key": key},
        lambda key: {"Key": key},
        lambda key: {"X-API-Key": key},
    ],
)
def test_the_key_in_each_header_clients_use(api, headers):
    response = requests.post(api.base_url + "/api/v3/system_load", json={}, headers=headers(api.key), timeout=30)
    assert response.json()["status"] == "ok"


def test_a_v7_client_with_the_key_in_a_header(api):
    done = queued_then_fetched(
        api.without_key(),
        "/api/v7/images/text-to-image",
        {"prompt": "a fox", **TINY},
        "/api/v7/images/fetch/",
        headers={"Key": api.key},
    )
    assert done["output"]


def test_the_key_is_never_read_from_the_query_string(api):
    response = requests.post(f"{api.base_url}/api/v3/system_load?key={api.key}", timeout=30)
    assert response.json()["message"] == "Invalid Api Key"


def test_fields_in_the_query_string_with_an_empty_body(api):
    query = "prompt=from+the+query&width=64&height=64&num_inference_steps=1&seed=7"
    response = requests.post(f"{api.base_url}/api/v3/text2img?{query}", headers={"key": api.key}, timeout=60)
    body = response.json()
    assert body["status"] == "success", body
    assert (body["meta"]["prompt"], body["meta"]["seed"], body["meta"]["W"]) == ("from the query", 7, 64)


def test_the_body_wins_over_the_query_string(api):
    response = requests.post(
        f"{api.base_url}/api/v3/text2img?prompt=query&width=64&height=64",
        json={"key": api.key, "prompt": "body", "num_inference_steps": 1},
        timeout=60,
    )
    body = response.json()
    assert (body["meta"]["prompt"], body["meta"]["W"]) == ("body", 64)


def test_a_non_json_body_with_query_fields_is_read_from_the_query(api):
    response = requests.post(
        f"{api.base_url}/api/v3/text2img?prompt=q&width=64&height=64&num_inference_steps=1",
        data="not json",
        headers={"key": api.key},
        timeout=60,
    )
    assert response.json()["status"] == "success"
    broken = requests.post(f"{api.base_url}/api/v3/text2img", data="not json", headers={"key": api.key}, timeout=60)
    assert broken.json()["message"] == "Invalid API Request"


def test_a_fetch_sent_to_the_absolute_url_of_fetch_result(api):
    job = api.post("/api/v6/images/text2img", {"prompt": "x", **TINY, "instant_response": "yes"})
    api.wait_for(job["id"])
    url = f"{api.base_url}/api/v6/images/fetch/{job['id']}"
    parts = urlsplit(api.base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.request("POST", url, body=json.dumps({"key": api.key}), headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    assert response.status == 200 and body["status"] == "success" and body["id"] == job["id"]
