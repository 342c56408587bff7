"""The OpenAPI schema and the docs page."""

import re

import requests
import yaml


def test_schema_lists_every_v3_endpoint_with_examples(live_server):
    response = requests.get(live_server.url + "/api/schema/", timeout=30)
    assert response.status_code == 200
    schema = yaml.safe_load(response.text)
    assert schema["openapi"].startswith("3.")
    paths = set(schema["paths"])
    for path in (
        "/api/v3/text2img",
        "/api/v3/img2img",
        "/api/v3/inpaint",
        "/api/v3/super_resolution",
        "/api/v3/fetch/{job_id}",
        "/api/v3/system_load",
        "/api/v3/cancel/{job_id}",
        "/api/v3/account",
    ):
        assert path in paths or path + "/" in paths, path
    text2img = schema["paths"].get("/api/v3/text2img") or schema["paths"]["/api/v3/text2img/"]
    content = text2img["post"]["responses"]["200"]["content"]["application/json"]
    assert {"success", "processing", "ValidationError"} & set(content["examples"])


def test_docs_page_and_its_bundled_assets(live_server):
    page = requests.get(live_server.url + "/api/docs/", timeout=30)
    assert page.status_code == 200 and "swagger" in page.text.lower()
    assets = re.findall(r'src="([^"]+\.js)"', page.text)
    assert assets  # served by the app (no CDN)
    for asset in assets:
        assert requests.get(live_server.url + asset, timeout=30).status_code == 200, asset
