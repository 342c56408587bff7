"""Scale-out: outputs in shared S3-compatible storage (moto's server), workers on different queues,
and higher-priority queues served first."""

import io
import json
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import django_rq
import pytest
import requests
from PIL import Image

from config import redis_server
from generation.lifecycle import jobs
from generation.models import Job
from tests.conftest import start_worker, stop_worker
from tests.test_fetch import _params
from tests.test_recovery import wait_until

MOTO = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
BUCKET = "sdxl-outputs"
PUBLIC_READ = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": [f"arn:aws:s3:::{BUCKET}/generations/*", f"arn:aws:s3:::{BUCKET}/thumbnails/*"],
        }
    ],
}
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_S3_REGION_NAME": "us-east-1",
    "AWS_STORAGE_BUCKET_NAME": BUCKET,
}


@pytest.fixture
def s3_endpoint(monkeypatch):
    port = redis_server.free_port()
    process = subprocess.Popen(
        [MOTO, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(endpoint, timeout=1)
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(PUBLIC_READ))  # as the README asks
    yield endpoint
    process.terminate()
    process.wait()


@pytest.fixture
def s3_storage(s3_endpoint, settings):
    """This process (the web tier) writes and links outputs through S3, like the workers will."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": s3_endpoint,
                "region_name": "us-east-1",
                "querystring_auth": False,
                "file_overwrite": False,
            },
        },
    }
    return s3_endpoint


@pytest.fixture
def spare_queues(worker):
    queues = [django_rq.get_queue("isolated"), django_rq.get_queue("parked")]
    for queue in queues:
        queue.empty()
    yield queues
    for queue in queues:
        queue.empty()


def test_outputs_land_in_s3_and_download(api, account, s3_storage, spare_queues):
    user, _ = account
    gpu_box = start_worker("s3", queues=["isolated"], AWS_S3_ENDPOINT_URL=s3_storage)
    try:
        job = jobs.submit(
            user=user, params=_params(samples=2, base64=True), base_url=api.base_url, queue_name="isolated"
        )
        body = api.wait_for(job.id)
    finally:
        stop_worker(gpu_box)
    assert body["status"] == "success", body
    assert Job.objects.get(pk=job.id).worker_name.startswith("s3-")
    for url in body["output"]:
        assert url.startswith(f"{s3_storage}/{BUCKET}/generations/") and url.endswith(".base64")
        assert requests.get(url, timeout=10).text.startswith("data:image/png;base64,")
    png = requests.get(body["output"][0].replace(".base64", ".png"), timeout=10)
    assert Image.open(io.BytesIO(png.content)).size == (64, 64)
    listed = boto3.client("s3", endpoint_url=s3_storage, region_name="us-east-1").list_objects_v2(Bucket=BUCKET)
    keys = {item["Key"] for item in listed["Contents"]}
    assert {
        f"generations/{job.file_prefix}-0.png",
        f"generations/{job.file_prefix}-1.png",
        f"thumbnails/{job.file_prefix}.jpg",
    } <= keys


class FailingS3:
    """A real local HTTP server in front of the S3 endpoint that answers S3's InternalError to every upload
    of keys ending with `failing` (as an overloaded or broken S3 does) and passes everything else on."""

    def __init__(self, upstream: str, failing: str):
        self.failed = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.command == "PUT" and self.path.split("?")[0].endswith(failing):
                    proxy.failed += 1
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {name: value for name, value in self.headers.items() if name.lower() != "host"}
                answer = requests.request(self.command, upstream + self.path, headers=headers, data=body, timeout=30)
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.content)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_job_whose_second_image_cannot_be_uploaded_leaves_nothing_in_s3(api, account, s3_storage, spare_queues):
    """S3 uploads are atomic, so no object is ever torn; what the worker must do is delete the images it
    had already uploaded for a job that then fails, so nothing of it is left or served."""
    user, _ = account
    proxy = FailingS3(s3_storage, failing="-1.png")
    worker = start_worker("s3-failing", queues=["isolated"], AWS_S3_ENDPOINT_URL=proxy.url)
    try:
        job = jobs.submit(user=user, params=_params(samples=2), base_url=api.base_url, queue_name="isolated")
        body = api.wait_for(job.id)
    finally:
        stop_worker(worker)
        proxy.stop()
    assert body["status"] == "failed" and "could not be stored" in body["message"], body
    assert proxy.failed >= 1
    listed = boto3.client("s3", endpoint_url=s3_storage, region_name="us-east-1").list_objects_v2(Bucket=BUCKET)
    assert not [item["Key"] for item in listed.get("Contents", []) if str(job.file_prefix) in item["Key"]]


def test_workers_serve_their_own_queues_highest_first(api, account, spare_queues):
    user, _ = account
    low = jobs.submit(user=user, params=_params(), base_url=api.base_url, queue_name="parked")
    high = jobs.submit(user=user, params=_params(), base_url=api.base_url, queue_name="isolated")
    process = start_worker("priority", queues=["isolated", "parked"])  # "isolated" plays the high queue here
    try:
        wait_until(lambda: Job.objects.filter(pk__in=[low.pk, high.pk], status="success").count() == 2)
    finally:
        stop_worker(process)
    low.refresh_from_db()
    high.refresh_from_db()
    assert high.started_at < low.started_at  # queued later, served first
    assert high.worker_name == low.worker_name and high.worker_name.startswith("priority-")
