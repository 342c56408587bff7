"""`make run` (scripts/run.py), started once for the session (tests/make_run.py): a quiet terminal with the logs in files, a
web tier that slow clients cannot hold, and a worker that dies is started again."""

import base64
import json
import os
import signal
import socket
import threading
import time

import requests
from django.conf import settings

from config import redis_server
from tests.conftest import png_bytes
from tests.make_run import MakeRun
from tests.test_recovery import wait_until


def test_the_terminal_shows_steps_and_a_banner_and_the_logs_go_to_files(make_run):
    printed = "".join(make_run.banner)
    assert f"SDXL API is running at {make_run.url}/" in printed
    assert "Health check" not in printed and "Service Unavailable" not in printed
    assert '"GET ' not in printed and '"POST ' not in printed  # no access-log line
    assert "Warning" not in printed and "Loading" not in printed
    assert len(make_run.banner) < 25, printed
    assert str(make_run.log_dir) in printed
    requests.get(make_run.url + "/healthz", timeout=10)
    access_log = make_run.log_dir / "access.log"
    wait_until(lambda: access_log.exists() and "/healthz" in access_log.read_text())  # written after the answer
    assert "Loaded" in (make_run.log_dir / "worker.log").read_text()  # the worker's own output


def test_the_banner_comes_once_the_worker_made_an_image_and_its_curl_answers_at_once(make_run):
    printed = "".join(make_run.banner)
    assert "Worker: ready" in printed and printed.index("Worker: ready") < printed.index("SDXL API is running")
    command = next(line for line in make_run.banner if line.strip().startswith("-d '"))
    body = json.loads(command.strip().removeprefix("-d '").removesuffix("'"))
    answer = requests.post(make_run.url + "/api/v3/text2img", json=body, timeout=60).json()
    assert answer["status"] == "success", answer  # within GENERATION_WAIT_SECONDS, not "processing"


def test_make_run_starts_redis_on_redis_urls_port_and_ctrl_c_stops_everything_quietly(tmp_path):
    port = redis_server.free_port()
    run = MakeRun(tmp_path, redis_url=f"redis://127.0.0.1:{port}/3")
    try:
        assert f"started one at redis://127.0.0.1:{port}/3" in "".join(run.banner)  # its port, not another
        assert redis_server.is_reachable(f"redis://127.0.0.1:{port}/0")
        printed = run.ctrl_c()
    finally:
        run.stop()
    assert printed.strip().splitlines()[-2:] == ["Stopping...", "Stopped."] and "exited" not in printed
    assert run.process.returncode == 0 and not redis_server.is_reachable(f"redis://127.0.0.1:{port}/0")


def test_the_demo_has_a_controlnet_so_the_hosted_examples_run(make_run):
    """`make run` adds a demo ControlNet as 'canny': the hosted service's ControlNet example works as written."""
    image = base64.b64encode(png_bytes()).decode()
    body = requests.post(
        make_run.url + "/api/v5/controlnet",
        json={"key": make_run.key, "controlnet_model": "canny", "init_image": image, "prompt": "a house", "steps": 2},
        timeout=120,
    ).json()
    assert body["status"] in ("success", "processing"), body
    listed = requests.post(
        make_run.url + "/api/v4/dreambooth/model_list", json={"key": make_run.key}, timeout=30
    ).json()
    assert "canny" in {entry["model_id"] for entry in listed if entry["model_category"] == "controlnet"}


def _slow_body(port: int, sent: threading.Semaphore, stop: threading.Event):
    """A request whose body arrives one byte a second, until the test ends (`sent` once its head is out)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /api/v3/text2img HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n{")
        sent.release()
        while not stop.wait(1):
            sock.sendall(b" ")


def test_slow_clients_hold_no_thread_of_the_web_server(make_run):
    """Thirty-two clients send their bodies a byte at a time, for longer than the test waits: other
    requests are still answered (under gunicorn's threads they waited for a free thread)."""
    stop, sent = threading.Event(), threading.Semaphore(0)
    clients = [threading.Thread(target=_slow_body, args=(make_run.port, sent, stop)) for _ in range(32)]
    for client in clients:
        client.start()
    try:
        for _ in clients:  # every one of them is in the middle of its body
            assert sent.acquire(timeout=60)
        for _ in range(3):
            answer = requests.post(make_run.url + "/api/v3/system_load", json={"key": make_run.key}, timeout=10)
            assert answer.json()["status"] == "ok"
    finally:
        stop.set()
        for client in clients:
            client.join()


def test_a_body_over_the_cap_is_answered_without_reading_the_rest(make_run):
    """A client declares a body a hundred times the cap and sends a little more than the cap: it is
    answered then, in the envelope; the server neither waits for nor stores the rest."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    with socket.create_connection(("127.0.0.1", make_run.port)) as sock:
        sock.sendall(
            f"POST /api/v3/text2img HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {100 * limit}\r\n\r\n".encode()
        )
        chunk = b"a" * (1 << 20)
        for _ in range(limit // len(chunk) + 2):
            sock.sendall(chunk)
        sock.settimeout(30)
        reply = b""
        while b"}" not in reply and (chunk := sock.recv(65536)):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["message"].startswith("Request body too large")


def test_a_killed_worker_is_started_again_and_the_web_server_stays_up(make_run):
    (killed,) = make_run.live_worker_pids()
    os.kill(killed, signal.SIGKILL)
    deadline = time.monotonic() + 120
    while not (make_run.live_worker_pids() - {killed}) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert make_run.live_worker_pids() - {killed}, "no worker came back"
    assert requests.get(make_run.url + "/healthz", timeout=10).status_code == 200
    deadline = time.monotonic() + 10
    while "The worker stopped (exit code -9)" not in "".join(make_run.later) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "The worker stopped (exit code -9); starting a new one." in "".join(make_run.later)


def _exchange(port: int, request: bytes) -> tuple[int, dict]:
    """Send a raw request and read the answer until the server closes: (status, JSON body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _descendants(pid: int) -> list[int]:
    children = []
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                fields = open(f"/proc/{stat}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children += [int(stat), *_descendants(int(stat))]
    return children


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def test_request_heads_are_bounded_and_refused_in_the_envelope(make_run):
    """A header line of 200 MB is refused after the bound (64 KiB) without the web process growing, so are
    a thousand small headers; a NUL in a header gets the envelope, not the server's plain text."""
    web = [
        pid for pid in _descendants(make_run.process.pid) if b"gunicorn" in open(f"/proc/{pid}/cmdline", "rb").read()
    ]
    before = {pid: _rss_mib(pid) for pid in web}
    sent = 0
    with socket.create_connection(("127.0.0.1", make_run.port), timeout=30) as sock:
        sock.sendall(b"POST /api/v3/system_load HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        try:
            while sent < 200 << 20:
                sock.sendall(b"a" * (1 << 20))
                sent += 1 << 20
        except OSError:  # the server closed the connection: the rest of the header was never read
            pass
    assert sent < 32 << 20, f"{sent >> 20} MiB of one header line were read"
    assert max(_rss_mib(pid) - before[pid] for pid in web) < 16

    many = b"".join(b"X-Header-%d: 1\r\n" % i for i in range(1000))
    status, body = _exchange(
        make_run.port, b"POST /api/v3/system_load HTTP/1.1\r\nHost: 127.0.0.1\r\n" + many + b"\r\n"
    )
    assert (status, body["status"], body["message"]) == (431, "error", "Request header fields too large")
    nul = b"POST /api/v3/system_load HTTP/1.1\r\nHost: 127.0.0.1\r\nIdempotency-Key: a\x00b\r\nContent-Length: 2\r\n\r\n{}"
    status, body = _exchange(make_run.port, nul)
    assert status == 400 and body["status"] == "error" and body["message"].startswith("Invalid API Request")
    answer = requests.post(make_run.url + "/api/v3/system_load", json={"key": make_run.key}, timeout=10)
    assert answer.json()["status"] == "ok"


def test_a_chunked_body_is_read(make_run):
    """`Transfer-Encoding: chunked` (no Content-Length) carries the key like any body."""
    body = json.dumps({"key": make_run.key}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + 7]), body[i : i + 7]) for i in range(0, len(body), 7))
    request = (
        b"POST /api/v3/system_load HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks + b"0\r\n\r\n"
    )
    status, answer = _exchange(make_run.port, request)
    assert status == 200 and answer["status"] == "ok" and answer["queue_num"] == 0
