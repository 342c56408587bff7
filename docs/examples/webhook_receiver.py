"""A webhook receiver to try locally: prints every delivery whose signature checks out.

    WEBHOOK_SECRET=<from the dashboard's Webhooks page> python docs/examples/webhook_receiver.py

Listens on 127.0.0.1:9000. It checks `X-Signature: sha256=HMAC(body)` with the standard library;
receivers in production can verify the Standard Webhooks headers with the `standardwebhooks` package."""

import hashlib
import hmac
import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ["WEBHOOK_SECRET"].encode()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, self.headers.get("X-Signature", "")):
            self.send_response(401)
            self.end_headers()
            print("refused: bad signature")
            return
        self.send_response(200)
        self.end_headers()
        delivery = json.loads(body)
        print(f"job {delivery.get('id')} {delivery.get('status')}: {delivery.get('output')}")


if __name__ == "__main__":
    print("listening on http://127.0.0.1:9000/")
    HTTPServer(("127.0.0.1", 9000), Receiver).serve_forever()
