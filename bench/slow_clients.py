"""Slow clients and slow image URLs: how long an unrelated request waits while they are in flight.

    .venv/bin/python bench/slow_clients.py [--server asgi|wsgi] [--count 16]

Two attacks, one after the other, each with `--count` connections from one account:
1. slow clients: requests whose body arrives one byte a second (slowloris);
2. slow URLs: img2img requests whose `init_image` server sends one byte a second.
While each is in flight, another account calls system_load and fetch; the figures are its waits.
`--server wsgi` serves Django as it was served before (gunicorn threads), to compare.
"""

import argparse
import http.client
import http.server
import socket
import threading
import time

import common


class TrickleHandler(http.server.BaseHTTPRequestHandler):
    """An image server that sends a PNG header and then one byte a second."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            self.wfile.write(b"\x89PNG\r\n\x1a\n")
            while True:
                self.wfile.write(b"\0")
                self.wfile.flush()
                time.sleep(1)
        except OSError:
            pass

    def log_message(self, *args):
        pass


def slow_body(port: int, stop: threading.Event, seconds: int = 30):
    """A POST whose 10,000-byte body arrives one byte a second, for `seconds` or until `stop`."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /api/v3/text2img HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10000\r\n\r\n{"
        )
        for _ in range(seconds):
            if stop.wait(1):
                return
            try:
                sock.sendall(b" ")
            except OSError:
                return


def slow_url(port: int, key: str, image_url: str, answers: list):
    """An img2img request pointing at the trickling image server; its answer and seconds go to `answers`."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        body = common.post(conn, "/api/v3/img2img", {"key": key, "prompt": "x", "init_image": image_url})
        answers.append((str(body.get("message", body.get("status")))[:90], time.monotonic() - started))
    except OSError as exc:
        answers.append((type(exc).__name__, time.monotonic() - started))


def unrelated_waits(port: int, key: str, rounds: int = 5) -> list[float]:
    """Seconds each of `rounds` system_load calls of another account takes, on a new connection."""
    waits = []
    for _ in range(rounds):
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        common.post(conn, "/api/v3/system_load", {"key": key})
        waits.append(time.monotonic() - started)
        conn.close()
        time.sleep(0.5)
    return waits


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", choices=["asgi", "wsgi"], default="asgi")
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--port", type=int, default=8771)
    args = parser.parse_args()

    bystander_key = common.setup()
    from accounts.keys import create_api_key
    from accounts.models import User

    attacker_key = create_api_key(User.objects.create_user(email="slow@example.com", password="x" * 12), "k")[1]
    images = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TrickleHandler)
    threading.Thread(target=images.serve_forever, daemon=True).start()
    web = common.start_web(args.port, server=args.server)
    try:
        common.connect(args.port, bystander_key)
        idle = unrelated_waits(args.port, bystander_key)

        stop = threading.Event()
        for _ in range(args.count):
            threading.Thread(target=slow_body, args=(args.port, stop), daemon=True).start()
        time.sleep(3)
        during_slow_clients = unrelated_waits(args.port, bystander_key)
        stop.set()
        time.sleep(2)

        image_url = f"http://127.0.0.1:{images.server_port}/slow.png"
        answers = []
        attackers = [
            threading.Thread(target=slow_url, args=(args.port, attacker_key, image_url, answers), daemon=True)
            for _ in range(args.count)
        ]
        for attacker in attackers:
            attacker.start()
        time.sleep(3)
        during_slow_urls = unrelated_waits(args.port, bystander_key)
        for attacker in attackers:
            attacker.join(timeout=300)
    finally:
        common.stop(web)
        images.shutdown()

    print(f"server: {args.server}; {args.count} slow connections from one account")
    for name, waits in [("idle", idle), ("slow clients", during_slow_clients), ("slow URLs", during_slow_urls)]:
        print(f"  unrelated system_load while {name:<13} max {max(waits):6.2f} s  median {sorted(waits)[2]:6.2f} s")
    print("  the slow-URL requests were answered:")
    for message in sorted({message for message, _ in answers}):
        seconds = [s for m, s in answers if m == message]
        print(f"    {len(seconds):3d} x {message!r} after {min(seconds):.1f}-{max(seconds):.1f} s")


if __name__ == "__main__":
    main()
