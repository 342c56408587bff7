"""The whole first-visit flow in a real browser (Playwright + Debian's Chromium) against a live server
and a real worker: sign up, create a key, generate in the playground, see it in history, revoke the key.
Screenshots of each page go to tests/artifacts/."""

import base64
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from PIL import Image

from tests import model_files
from tests.conftest import ROOT, Api, make_account, paused, png_bytes, start_worker, step_until, stop_worker
from tests.test_text2img import decode
from tests.test_training import TRAINER_ENV, photo, small_trainings_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Chromium (apt-get install chromium)")
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop


@pytest.fixture
def page(live_server, worker, transactional_db):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        page = context.new_page()
        page.set_default_timeout(90000)  # a job waited for on a loaded machine (two busy cores) takes long
        violations = []  # the pages must pass their Content-Security-Policy: no inline script or style
        page.on(
            "console",
            lambda message: (
                violations.append((page.url, message.text[:90])) if "Content Security Policy" in message.text else None
            ),
        )
        yield page
        browser.close()
    assert violations == []


def shot(page, name):
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_up(page, base, email, before_submit=None):
    """Fill the sign-up form (already open) and submit it; on the dashboard when this returns."""
    page.fill("input[name=email]", email)
    page.fill("input[name=password1]", "a-long-passphrase-42")
    page.fill("input[name=password2]", "a-long-passphrase-42")
    if before_submit:
        before_submit()
    page.click("button[type=submit]")
    page.wait_for_url(base + "/dashboard/")


def test_sign_up_to_first_image_to_revoked_key(page, live_server):
    base = live_server.url
    page.goto(base + "/")
    shot(page, "01-home")

    # sign up
    page.click("text=Sign up")
    sign_up(page, base, "newcomer@example.com", before_submit=lambda: shot(page, "02-signup"))
    assert "newcomer@example.com" in page.text_content("#confirm-email")  # and where the email went
    assert "Create an API key" in page.text_content("#first-steps")
    shot(page, "03-dashboard-empty")

    # create a key: shown once
    page.click("header >> text=API keys")
    page.fill("input[name=name]", "browser")
    page.click("text=Create key")
    key = page.text_content("#new-key").strip()
    assert len(key) == 52
    shot(page, "04-keys")
    page.click("header >> text=Dashboard")
    assert page.query_selector("#first-steps") is None  # done with the first step

    # generate in the playground and watch it finish
    page.click("header >> text=Playground")
    page.fill("textarea[name=prompt]", "a lighthouse at dusk")
    page.fill("input[name=width]", "64")
    page.fill("input[name=height]", "64")
    page.fill("input[name=num_inference_steps]", "3")
    page.fill("input[name=seed]", "7")
    shot(page, "05-playground")
    page.click("#generate")
    page.wait_for_selector("#result-status:text('success')")
    page.wait_for_selector("#result-outputs img")
    shot(page, "06-playground-result")

    # the image is in the history, with its thumbnail, and the detail page has the download
    page.click("header >> text=History")
    thumbnail = page.wait_for_selector(".job img")
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=thumbnail)
    shot(page, "07-history")
    page.click(".job")
    page.wait_for_selector("#job-outputs img")
    assert "Prompt" in page.text_content("#job-fields") and "None" not in page.text_content("#job-fields")
    shot(page, "08-job")
    page.click("#open-in-playground")
    page.wait_for_url(base + "/dashboard/playground/")
    page.wait_for_selector("#playground[data-filled=true]")
    assert page.input_value("input[name=seed]") == "7"

    # the ledger says what the credits went to
    page.click("header >> text=Billing")
    ledger = page.text_content("#ledger")
    assert "· 1 image · 1 credit reserved" in ledger and "done · its reserved credits spent" in ledger
    shot(page, "08b-billing-ledger")
    assert page.request.get(base + "/favicon.ico").ok

    # the key works on the API, then is revoked and refused at once
    api = Api(base, key)
    assert api.post("/api/v3/system_load")["status"] == "ok"
    page.click("header >> text=API keys")
    page.click("text=Revoke")
    page.wait_for_selector("tr.revoked")
    shot(page, "09-keys-revoked")
    assert api.post("/api/v3/system_load")["message"] == "Invalid Api Key"

    page.click("header >> text=Dashboard")
    assert "100%" in [bar.evaluate("(bar) => bar.style.height") for bar in page.query_selector_all(".bar")]
    shot(page, "10-dashboard")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    shot(page, "11-dashboard-phone")


def test_pick_a_plan_pay_and_see_the_credits(plans, stripe_server, live_server, page):
    # `plans` first: rows made inside Playwright's greenlet would use a connection the teardown never closes
    base = live_server.url
    page.goto(base + "/accounts/signup/")
    sign_up(page, base, "buyer@example.com")
    page.click("header >> text=Billing")
    free_credits = int(page.text_content("#balance"))
    shot(page, "12-billing-free")

    page.click("text=Change plan")
    shot(page, "13-pricing")
    page.click("text=Upgrade to Pro")  # Checkout (the stand-in pays at once and sends Stripe's webhooks)
    page.wait_for_url(base + "/billing/?checkout=success")
    assert page.text_content("#plan-name") == "Pro"
    assert int(page.text_content("#balance")) == free_credits + 5000
    assert "invoice" in page.text_content("#ledger").lower()
    shot(page, "14-billing-pro")


@pytest.mark.postgres_only  # the worker is paused mid-job: on SQLite it may hold the one write lock
def test_playground_preview_download_and_send_to_img2img(page, live_server, worker, transactional_db):
    """The preview changes while the job runs (the worker is let run in slices), the download button
    downloads the image, and "Send to img2img" runs img2img on this server's own output URL."""
    base = live_server.url
    page.goto(base + "/accounts/signup/")
    sign_up(page, base, "painter@example.com")
    page.click("header >> text=Playground")
    page.fill("input[name=width]", "128")
    page.fill("input[name=height]", "128")
    page.fill("input[name=num_inference_steps]", "40")
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    with paused(worker):
        page.click("#generate")
        page.wait_for_selector("#result-status:text('queued')")

        def preview_source():
            node = page.query_selector("#result-preview")
            return node.get_attribute("src") if node else None

        seen = step_until(worker, preview_source, lambda sources: len(set(sources) - {None}) >= 2, gap=0.8)
    assert len(set(seen) - {None}) >= 2  # the preview changed while it ran
    assert any(url.endswith("/events/") for url in requested)  # followed by its event stream,
    assert not any("status.json" in url for url in requested)  # not by polling
    shot(page, "06b-playground-preview")
    page.wait_for_selector("#result-status:text('success')")
    assert "/api/v6/images/text2img" in page.text_content("#result-curl")
    assert "seed" in page.text_content("#result-details")
    with page.expect_download() as download:
        page.click("#result-outputs .download")
    assert Path(download.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    page.click("#result-outputs .send-to-img2img")
    assert page.input_value("select[name=operation]") == "img2img"
    assert page.input_value("input[name=init_image_url]").startswith(base + "/media/generations/")
    page.fill("input[name=num_inference_steps]", "2")
    first_job = page.text_content("#result-link")
    page.click("#generate")
    page.wait_for_function(
        "(first) => !['', first].includes(document.getElementById('result-link').textContent)", arg=first_job
    )
    page.wait_for_selector("#result-status:text('success')")
    page.wait_for_selector("#result-outputs img")
    shot(page, "06c-playground-img2img")


@pytest.fixture
def lora_user(transactional_db):
    """An account with a key, and a LoRA in the library (made before the browser starts: the database is
    used from this thread, not from Playwright's)."""
    lora = model_files.lora(ROOT / "var" / "test-models" / "lora-a", seed=1)
    call_command("addmodel", str(lora), "--id", "ink-style", "--kind", "lora")
    return make_account("again@example.com")


def test_run_again_restores_every_field_and_gives_the_same_image(lora_user, live_server, page):
    """A job made with a LoRA at 0.7, a seed, a size, a Karras scheduler and an init image: "Run again in
    the playground" fills the form with all of them (the image too) and generating gives the same image."""
    api = Api(live_server.url, lora_user[1])
    init = "data:image/png;base64," + base64.b64encode(png_bytes((96, 64), (30, 90, 200))).decode()
    request = {
        "prompt": "a harbour at dawn",
        "negative_prompt": "fog",
        "init_image": init,
        "width": 64,
        "height": 64,
        "num_inference_steps": 4,
        "guidance_scale": 6,
        "strength": 0.8,
        "seed": 1234,
        "scheduler": "DPM++ 2M Karras",
        "lora_model": "ink-style",
        "lora_strength": 0.7,
        "instant_response": "yes",
    }
    first = api.wait_for(api.post("/api/v6/images/img2img", request)["id"])
    assert first["status"] == "success", first

    base = live_server.url
    page.goto(base + "/accounts/login/")
    page.fill("input[name=login]", "again@example.com")
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_url(base + "/dashboard/")
    page.goto(f"{base}/dashboard/jobs/{first['id']}/")
    page.click("#open-in-playground")
    page.wait_for_selector("#playground[data-filled=true]")
    shot(page, "06d-playground-run-again")
    expected = {
        "select[name=operation]": "img2img",
        "textarea[name=prompt]": "a harbour at dawn",
        "input[name=negative_prompt]": "fog",
        "input[name=width]": "64",
        "input[name=height]": "64",
        "input[name=num_inference_steps]": "4",
        "input[name=guidance_scale]": "6",
        "input[name=strength]": "0.8",
        "input[name=seed]": "1234",
        "select[name=scheduler]": "DPMSolverMultistepScheduler",
        "select[name=use_karras_sigmas]": "yes",
        "select[name=lora_model]": "ink-style",
        "input[name=lora_strength]": "0.7",
        "#model-pickers select[name=model_id]": first["meta"]["model_id"],
    }
    assert {selector: page.input_value(selector) for selector in expected} == expected
    assert page.evaluate("document.querySelector('input[name=init_image]').files.length") == 1

    page.click("#generate")
    page.wait_for_selector("#result-status:text('success')")
    again = page.get_attribute("#result-outputs img", "src")
    assert again != first["output"][0]
    assert np.array_equal(np.asarray(decode(again)), np.asarray(decode(first["output"][0])))


@pytest.fixture
def staff(transactional_db):
    from accounts.models import User

    return User.objects.create_superuser(email="root@example.com", password="root-password-123")


def test_admin_gallery_counts_images_and_the_jobs_table_fits_1280_px(staff, api, live_server, page):
    assert (
        api.post("/api/v3/text2img", {"prompt": "boats", "width": 64, "height": 64, "samples": 2})["status"]
        == "success"
    )
    assert api.post("/api/v3/text2img", {"prompt": "a lighthouse", "width": 64, "height": 64})["status"] == "success"
    base = live_server.url
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(base + "/admin/login/")
    page.fill("input[name=username]", "root@example.com")
    page.fill("input[name=password]", "root-password-123")
    page.click("input[type=submit]")
    assert "SDXL API administration" in page.text_content("#site-name")
    page.goto(base + "/admin/generation/job/gallery/")
    assert page.text_content(".gallery-count").strip() == "3 images from 2 jobs."
    assert len(page.query_selector_all(".gallery img")) == 3
    shot(page, "15-admin-gallery")
    page.goto(base + "/admin/generation/job/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    assert page.evaluate("(r => r.scrollWidth <= r.clientWidth)(document.querySelector('.results'))")
    shot(page, "16-admin-jobs")
    page.goto(base + "/admin/generation/librarymodel/add/")
    page.goto(base + "/docs/")
    page.click("#docs-links >> text=/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock")  # the OpenAPI browser runs under the pages' policy
    shot(page, "17-openapi")


@pytest.fixture
def controlnet_user(transactional_db):
    """An account and a canny ControlNet in the library (made before the browser starts)."""
    controlnet = model_files.controlnet(ROOT / "var" / "test-models" / "controlnet-a", seed=1)
    call_command("addmodel", str(controlnet), "--id", "canny", "--kind", "controlnet")
    return make_account("edges@example.com")


def test_the_playground_runs_a_controlnet_shows_its_hint_and_runs_it_again(
    controlnet_user, live_server, page, tmp_path
):
    control = tmp_path / "control.png"
    image = np.full((64, 64, 3), 90, dtype=np.uint8)
    image[16:48, 16:48] = 240
    Image.fromarray(image).save(control)
    base = live_server.url
    page.goto(base + "/accounts/login/")
    page.fill("input[name=login]", "edges@example.com")
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_url(base + "/dashboard/")
    page.goto(base + "/dashboard/playground/")
    page.select_option("select[name=operation]", "controlnet")
    assert page.is_visible("select[name=controlnet_model]") and not page.is_hidden("input[name=control_image]")
    page.set_input_files("input[name=control_image]", str(control))
    page.fill("input[name=num_inference_steps]", "2")
    page.fill("input[name=width]", "64")
    page.fill("input[name=height]", "64")
    page.fill("input[name=controlnet_conditioning_scale]", "0.8")
    page.click("#generate")
    page.wait_for_selector("#result-status:text('success')")
    page.wait_for_selector("#result-outputs .hint img")
    hint = decode(page.get_attribute("#result-outputs .hint img", "src"))
    assert set(np.unique(np.asarray(hint.convert("L")))) == {0, 255}  # canny edges
    assert "/api/v6/images/controlnet" in page.text_content("#result-curl")
    shot(page, "06e-playground-controlnet")

    page.click("#result-link")
    page.wait_for_selector("#job-outputs .hint img")
    page.click("#open-in-playground")
    page.wait_for_selector("#playground[data-filled=true]")
    expected = {
        "select[name=operation]": "controlnet",
        "select[name=controlnet_model]": "canny",
        "select[name=controlnet_type]": "canny",
        "input[name=controlnet_conditioning_scale]": "0.8",
        "select[name=auto_hint]": "yes",
    }
    assert {selector: page.input_value(selector) for selector in expected} == expected
    assert page.evaluate("document.querySelector('input[name=control_image]').files.length") == 1


@pytest.fixture
def painter_user(transactional_db):
    return make_account("painter2@example.com")


def log_in(page, base, email):
    page.goto(base + "/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_url(base + "/dashboard/")


def test_the_mask_painter_sends_the_painted_mask(painter_user, live_server, page, tmp_path):
    """A stroke across the middle of the image (brush), part of it erased, one undone stroke: the mask
    sent has the image's size, white along the kept stroke and black elsewhere; the job repaints only it."""
    photo = tmp_path / "photo.png"
    Image.effect_noise((64, 64), 80).convert("RGB").save(photo)
    log_in(page, live_server.url, "painter2@example.com")
    page.goto(live_server.url + "/dashboard/playground/")
    page.select_option("select[name=operation]", "object_removal")
    page.set_input_files("input[name=init_image]", str(photo))
    page.wait_for_function("document.getElementById('paint-canvas').width === 64")
    box = page.locator("#paint-canvas").bounding_box()
    scale = box["width"] / 64  # the canvas is shown larger than the image
    page.fill("#paint-size", str(round(8 * scale)))

    def stroke(x0, y0, x1, y1):
        page.mouse.move(box["x"] + x0 * scale, box["y"] + y0 * scale)
        page.mouse.down()
        page.mouse.move(box["x"] + x1 * scale, box["y"] + y1 * scale, steps=8)
        page.mouse.up()

    stroke(4, 32, 60, 32)  # brush across the middle
    stroke(4, 8, 60, 8)  # a second stroke, undone
    page.click("#paint-undo")
    page.click("#paint-eraser")
    stroke(44, 32, 60, 32)  # the right end erased
    sent = []
    page.on("request", lambda request: sent.append(request.post_data_json) if request.url.endswith("/run/") else None)
    page.click("#generate")
    page.wait_for_selector("#result-status:text('success')")
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(sent[0]["mask_image"].split(",", 1)[1]))).convert("L"))
    assert mask.shape == (64, 64)
    assert mask[32, 10:36].min() > 200  # painted
    assert mask[32, 48:60].max() < 50  # erased
    assert mask[8].max() < 50 and mask[50].max() < 50  # undone, and never painted
    shot(page, "06f-playground-mask-painter")


def test_outpaint_in_the_playground_shows_the_canvas_and_gives_its_size(painter_user, live_server, page, tmp_path):
    photo = tmp_path / "photo.png"
    Image.new("RGB", (64, 48), (30, 120, 200)).save(photo)
    log_in(page, live_server.url, "painter2@example.com")
    page.goto(live_server.url + "/dashboard/playground/")
    page.select_option("select[name=operation]", "outpaint")
    page.set_input_files("input[name=init_image]", str(photo))
    page.fill("input[name=width]", "128")
    page.fill("input[name=height]", "96")
    page.fill("input[name=num_inference_steps]", "2")
    page.wait_for_function("document.getElementById('outpaint-preview').width === 128")
    # the preview shows the image in the middle of the canvas
    centre = page.evaluate(
        "Array.from(document.getElementById('outpaint-preview').getContext('2d').getImageData(64, 48, 1, 1).data)"
    )
    assert centre[:3] == [30, 120, 200]
    page.click("#generate")
    page.wait_for_selector("#result-status:text('success')")
    assert decode(page.get_attribute("#result-outputs img", "src")).size == (128, 96)
    assert "/api/v6/image_editing/outpaint" in page.text_content("#result-curl")
    shot(page, "06g-playground-outpaint")


# true once the mask painter's canvas stayed put from one animation frame to the next (polled each frame)
SETTLED = """() => {
  const top = document.getElementById('paint-canvas').getBoundingClientRect().top;
  const settled = window.lastCanvasTop === top;
  window.lastCanvasTop = top;
  return settled;
}"""


def test_a_result_sent_to_inpaint_is_painted_on_and_an_object_removal_runs_again_as_one(
    painter_user, live_server, page
):
    """ "Send to inpaint" loads the output under the mask painter (the mask sent has its size); "Remove an
    object" does the same, and that job is shown and run again as an object removal, not as the inpaint
    it runs as."""
    base = live_server.url
    log_in(page, base, "painter2@example.com")
    page.goto(base + "/dashboard/playground/")
    for name, value in (("width", "64"), ("height", "64"), ("num_inference_steps", "2")):
        page.fill(f"input[name={name}]", value)
    page.click("#generate")
    page.wait_for_selector("#result-outputs .send-to-inpaint")
    sent = []
    page.on("request", lambda request: sent.append(request.post_data_json) if request.url.endswith("/run/") else None)

    def paint_and_generate(kind: str) -> np.ndarray:
        page.click(f"#result-outputs .send-to-{kind}")
        assert page.input_value("select[name=operation]") == kind
        page.wait_for_function("document.getElementById('paint-canvas').width === 64")  # the output, loaded
        page.wait_for_function(SETTLED)  # the smooth scroll to the form is over
        canvas = page.locator("#paint-canvas")
        scale = canvas.bounding_box()["width"] / 64
        page.fill("#paint-size", str(round(10 * scale)))
        # positions within the canvas, wherever the page has scrolled it to
        canvas.hover(position={"x": 8 * scale, "y": 32 * scale})
        page.mouse.down()
        canvas.hover(position={"x": 56 * scale, "y": 32 * scale})
        page.mouse.up()
        first_job = page.text_content("#result-link")
        page.click("#generate")
        page.wait_for_function(
            "(first) => !['', first].includes(document.getElementById('result-link').textContent)", arg=first_job
        )
        page.wait_for_selector("#result-status:text('success')")
        page.wait_for_selector("#result-outputs .send-to-object_removal")
        return np.asarray(
            Image.open(io.BytesIO(base64.b64decode(sent[-1]["mask_image"].split(",", 1)[1]))).convert("L")
        )

    mask = paint_and_generate("inpaint")
    assert mask.shape[:2] == (64, 64) and mask[32, 16:48].min() > 200 and mask[8].max() < 50
    assert sent[-1]["init_image"].startswith(base + "/media/generations/")
    shot(page, "06h-playground-send-to-inpaint")
    assert paint_and_generate("object_removal").shape[:2] == (64, 64)
    page.click("#result-link")
    page.wait_for_selector("#job-outputs img")
    assert "object_removal" in page.text_content("h1")
    assert "Prompt" not in page.text_content("#job-fields")  # the preset's fill words are not the user's
    page.click("#open-in-playground")
    page.wait_for_selector("#playground[data-filled=true]")
    assert page.input_value("select[name=operation]") == "object_removal"


def test_train_page_trains_a_lora_that_generates_in_the_playground(page, live_server, tmp_path, settings):
    """Photos dropped on the Train page train a LoRA (on a training worker); its progress, loss chart and
    samples show as they come; "Use in the playground" generates with it."""
    small_trainings_for(settings)
    trainer = start_worker("browser-trainer", queues=["training"], **TRAINER_ENV)
    try:
        base = live_server.url
        page.goto(base + "/accounts/signup/")
        sign_up(page, base, "trainer@example.com")
        page.click("header >> text=Train")
        photos = []
        for index in range(5):
            path = tmp_path / f"photo-{index}.jpg"
            path.write_bytes(photo(index, fmt="JPEG"))
            photos.append(str(path))
        page.set_input_files("input[name=images]", photos)
        assert page.locator("#train-thumbnails img").count() == 5
        page.fill("input[name=instance_prompt]", "photo of zxq disc")
        page.fill("input[name=max_train_steps]", "8")
        page.fill("input[name=seed]", "5")
        page.click("#train-start")
        page.wait_for_selector("#training-stage:text('model_ready')", timeout=240_000)
        assert page.locator("#training-samples img").count() == 2  # every 4 steps
        assert int(page.get_attribute("#training-loss", "data-points")) >= 2
        shot(page, "09-train")
        with page.expect_download() as download:
            page.click("#training-download")
        assert Path(download.value.path()).read_bytes()[8:9] == b"{"  # a safetensors header
        training_id = page.text_content("#training-id")
        page.click("#training-use")
        page.wait_for_url(base + "/dashboard/playground/")
        assert page.input_value("select[name=lora_model]") == training_id
        page.fill("input[name=width]", "64")
        page.fill("input[name=height]", "64")
        page.fill("input[name=num_inference_steps]", "2")
        page.click("#generate")
        page.wait_for_selector("#result-status:text('success')")
        page.wait_for_selector("#result-outputs img")
    finally:
        stop_worker(trainer)


@pytest.fixture
def fast_lora_user(transactional_db):
    lora = model_files.lora(ROOT / "var" / "test-models" / "lora-a", seed=1)
    call_command("addmodel", str(lora), "--id", "lightning", "--kind", "lora", "--preset", "lightning")
    return make_account("fast@example.com")


def test_choosing_a_fast_model_in_the_playground_sets_its_sampling_and_the_job_page_says_so(
    fast_lora_user, live_server, page
):
    base = live_server.url
    log_in(page, base, "fast@example.com")
    page.goto(base + "/dashboard/playground/")
    page.fill("input[name=width]", "64")
    page.fill("input[name=height]", "64")
    page.select_option("select[name=lora_model]", "lightning")
    assert (page.input_value("input[name=num_inference_steps]"), page.input_value("input[name=guidance_scale]")) == (
        "4",
        "0",
    )
    assert "EulerDiscreteScheduler, trailing, 4 steps (at most 8)" in page.text_content("#fast-model")
    shot(page, "06e-playground-fast-model")
    page.click("#generate")
    page.wait_for_selector("#result-status:text('success')")
    page.click("#result-link")
    page.wait_for_selector("#job")
    details = page.text_content("main")
    assert "Sampling of" in details and "lightning" in details and "trailing" in details
