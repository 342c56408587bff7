"""docs/api.md: every path it names is served, and its examples run in order, as written, on `make run`."""

import base64
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys

from django.urls import Resolver404, resolve

from tests.conftest import ROOT
from tests.test_recovery import wait_until

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


def json_bodies(text: str) -> list[dict]:
    """Every JSON object printed in `text` (curl prints bodies back to back; streams as `data:` lines)."""
    decoder, bodies, index = json.JSONDecoder(), [], 0
    while (index := text.find("{", index)) != -1:
        try:
            body, index = decoder.raw_decode(text, index)
            bodies.append(body)
        except ValueError:
            index += 1
    return bodies


def test_the_examples_run_in_order_as_written_on_make_run(make_run, tmp_path):
    """Every `sh` block of docs/api.md, in order, as one script on a fresh `make run` (started as its
    webhook example says), with the reader's placeholders filled in: the demo key, the server's address
    and the webhook secret. Every answer is a success (or the processing of one), but the two errors the
    examples show on purpose; the example receiver prints the verified webhook delivery."""
    with sqlite3.connect(make_run.database) as database:
        (secret,) = database.execute(
            "SELECT webhook_secret FROM accounts_user WHERE email = 'demo@example.com'"
        ).fetchone()
    script = "\n".join(re.findall(r"```sh\n(.*?)```", DOC, flags=re.DOTALL))
    for placeholder, value in (("KEY=...", make_run.key), ("WEBHOOK_SECRET=...", secret)):
        assert placeholder in script
        script = script.replace(placeholder, f"{placeholder[:-3]}{value}")
    script = script.replace("H=http://127.0.0.1:8000", f"H={make_run.url}")
    output = tmp_path / "output.txt"
    with open(output, "w") as printed:
        shell = subprocess.Popen(
            ["bash", "-c", "set -euo pipefail\n" + script],
            cwd=ROOT,
            stdout=printed,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        assert shell.wait(timeout=600) == 0, output.read_text()[-3000:]
        wait_until(lambda: re.search(r"job \d+ success", output.read_text()), timeout=120)  # the receiver's line
    finally:
        os.killpg(shell.pid, signal.SIGTERM)  # the example receiver, still listening
    bodies = [body for body in json_bodies(output.read_text()) if "status" in body]
    assert len(bodies) > 20
    unexpected = [
        body
        for body in bodies
        if body["status"] not in ("success", "processing", "ok")
        and body.get("message") != {"prompt": ["The prompt field is required."]}  # the error example
        and not body.get("canceled")  # the cancel example
    ]
    assert unexpected == []
