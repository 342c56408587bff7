"""docs/api.md: every path it names is served, and its offline examples work as written."""

import base64
import re
import subprocess
import sys

from django.urls import Resolver404, resolve

from tests.conftest import ROOT

DOC = (ROOT / "docs" / "api.md").read_text()


def test_every_path_in_the_reference_is_served():
    paths = set(re.findall(r"`(?:POST|GET) (/(?:api/v\d|v1|sdapi/v1)/[^`\s]*)`", DOC))
    assert {"/v1/images/edits", "/sdapi/v1/txt2img", "/sdapi/v1/progress"} <= paths  # the front-ends too
    families = re.findall(r"^\| `(/api/[^|]+)` \| ([^|]+) \|", DOC, flags=re.MULTILINE)
    for prefixes, operations in families:
        for prefix in re.findall(r"`(/api/[^`]+)`", "`" + prefixes.strip("` ") + "`"):
            for operation in re.findall(r"`([a-z_\-/{}]*)`", re.sub(r"\([^)]*\)", "", operations)):
                paths.add(prefix.rstrip("/") + ("/" + operation if operation else ""))
    assert len(paths) > 30
    unresolved = []
    for path in sorted(paths):
        concrete = path.replace("{id}", "12").replace("{operation}", "outpaint").split(" ")[0]
        try:
            resolve(concrete)
        except Resolver404:
            unresolved.append(path)
    assert not unresolved
    assert "../shared" not in (ROOT / "README.md").read_text()  # the reference lives in the repository


def test_the_sample_images_make_an_inpaint_request(api):
    subprocess.run([sys.executable, "docs/examples/make_images.py"], cwd=ROOT, check=True, capture_output=True)
    photo, mask = (base64.b64encode(open(f"/tmp/sdxl-{name}.png", "rb").read()).decode() for name in ("photo", "mask"))
    body = api.post(
        "/api/v3/inpaint",
        {"prompt": "a red sofa", "init_image": photo, "mask_image": mask, "width": 64, "height": 64, "steps": 2},
    )
    assert body["status"] == "success", body


def test_the_reference_is_served_as_a_page_and_the_nav_opens_it(client):
    page = client.get("/docs/").content.decode()
    assert "<h1>API reference</h1>" in page and "<table>" in page
    assert 'href="/api/docs"' in page  # the OpenAPI browser, linked from it
    assert 'href="/docs/deploy/"' in page  # docs/api.md's link to deploy.md, as a page of this site
    assert "<h1>Deploying" in client.get("/docs/deploy/").content.decode()
    assert "<h1>Adding a kind of job</h1>" in client.get("/docs/adding-a-kind/").content.decode()
    assert client.get("/docs/settings/").status_code == 404
    home = client.get("/").content.decode()
    assert '<a href="/docs/">Docs</a>' in home
