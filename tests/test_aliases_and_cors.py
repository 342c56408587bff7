"""Compatibility aliases answer like the v3 endpoints; CORS preflight is answered."""

import requests

TEXT = {"prompt": "x", "width": 64, "height": 64, "num_inference_steps": 1}


def test_dreambooth_aliases(api, image_url):
    for path in ("/api/v3/dreambooth", "/api/v4/dreambooth"):
        assert api.post(path, TEXT)["status"] == "success"
    # v3 is single-model: a model id it does not serve is named in not_applied; v4 chooses from the library
    v3 = api.post("/api/v3/dreambooth", {**TEXT, "model_id": "sdxl-community-model"})
    assert [entry["field"] for entry in v3["meta"]["not_applied"]] == ["model_id"]
    v4 = api.post("/api/v4/dreambooth", {**TEXT, "model_id": "sdxl-community-model"})
    assert v4["message"] == {"model_id": ["The model id 'sdxl-community-model' does not exist."]}
    for path in ("/api/v3/dreambooth/img2img", "/api/v4/dreambooth/img2img"):
        assert api.post(path, {**TEXT, "init_image": image_url})["status"] == "success"


def test_fetch_aliases(api):
    job_id = api.post("/api/v3/text2img", TEXT)["id"]
    assert api.post(f"/api/v3/dreambooth/fetch/{job_id}")["id"] == job_id
    assert api.post("/api/v4/dreambooth/fetch", {"request_id": job_id})["id"] == job_id


def test_cors_preflight(api):
    response = requests.options(
        api.base_url + "/api/v3/text2img",
        timeout=10,
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "https://app.example.com")
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()

    post = api.post_raw("/api/v3/system_load", json={"key": api.key}, headers={"Origin": "https://app.example.com"})
    assert post.headers["Access-Control-Allow-Origin"] in ("*", "https://app.example.com")
