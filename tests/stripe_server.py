"""A stand-in for Stripe's servers in tests: a real local HTTP server that answers the API calls our
code makes (the official library is pointed at it with STRIPE_API_BASE) and, like Stripe, sends signed
webhook events to our endpoint when a customer pays or a subscription changes."""

import hashlib
import hmac
import itertools
import json
import re
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_test{next(_ids):06d}"


def signature_header(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The Stripe-Signature header Stripe would send for `payload`."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def unflatten(pairs) -> dict:
    """Stripe's form encoding (a[b][0][c]=x) back into nested dicts/lists."""
    root: dict = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(root)


def _lists(node):
    if isinstance(node, dict):
        if node and all(k.isdigit() for k in node):
            return [_lists(node[k]) for k in sorted(node, key=int)]
        return {k: _lists(v) for k, v in node.items()}
    return node


class FakeStripe:
    def __init__(self, webhook_secret: str):
        self.webhook_secret = webhook_secret
        self.webhook_url = None  # our endpoint; set by the test
        self.calls: list[tuple[str, str, dict]] = []
        self.customers, self.sessions, self.subscriptions = {}, {}, {}
        self.sent_events: list[dict] = []
        self.down = False  # answer every API call with a 500
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _body(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                return unflatten(parse_qsl(raw, keep_blank_values=True))

            def _json(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                params = self._body()
                path = urlsplit(self.path).path
                fake.calls.append(("POST", path, params))
                if fake.down:
                    return self._json(500, {"error": {"type": "api_error", "message": "Stripe is down"}})
                self._json(*fake.api_post(path, params))

            def do_GET(self):
                path = urlsplit(self.path).path
                fake.calls.append(("GET", path, {}))
                if path.startswith("/pay/"):
                    session = fake.pay(path.rsplit("/", 1)[1])
                    self.send_response(303)
                    self.send_header("Location", session["success_url"])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self._json(*fake.api_get(path))

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    # the API our code calls
    def api_post(self, path, params):
        if path == "/v1/customers":
            customer = {
                "id": new_id("cus"),
                "object": "customer",
                "email": params.get("email"),
                "metadata": params.get("metadata", {}),
            }
            self.customers[customer["id"]] = customer
            return 200, customer
        if path == "/v1/checkout/sessions":
            session = {
                "id": new_id("cs"),
                "object": "checkout.session",
                "mode": params["mode"],
                "customer": params["customer"],
                "client_reference_id": params.get("client_reference_id"),
                "metadata": params.get("metadata", {}),
                "success_url": params["success_url"],
                "price": params["line_items"][0]["price"],
                "subscription": None,
            }
            session["url"] = f"{self.url}/pay/{session['id']}"
            self.sessions[session["id"]] = session
            return 200, session
        if path == "/v1/billing_portal/sessions":
            return 200, {
                "id": new_id("bps"),
                "object": "billing_portal.session",
                "customer": params["customer"],
                "url": f"{self.url}/portal/{params['customer']}",
                "return_url": params.get("return_url"),
            }
        match = re.fullmatch(r"/v1/subscriptions/(\w+)", path)
        if match and match.group(1) in self.subscriptions:
            return 200, self.update_subscription(match.group(1), params)
        return 404, {"error": {"type": "invalid_request_error", "message": f"No such route {path}"}}

    def api_get(self, path):
        match = re.fullmatch(r"/v1/subscriptions/(\w+)", path)
        if match and match.group(1) in self.subscriptions:
            return 200, self.subscriptions[match.group(1)]
        return 404, {"error": {"type": "invalid_request_error", "message": f"No such route {path}"}}

    # what Stripe does on its side, with the webhooks it sends
    def subscription(self, customer, price, status="active"):
        now = int(time.time())
        return {
            "id": new_id("sub"),
            "object": "subscription",
            "customer": customer,
            "status": status,
            "cancel_at_period_end": False,
            "items": {
                "object": "list",
                "data": [
                    {
                        "id": new_id("si"),
                        "object": "subscription_item",
                        "price": {"id": price, "object": "price"},
                        "current_period_end": now + 30 * 86400,
                    }
                ],
            },
        }

    def invoice(self, subscription):
        return {
            "id": new_id("in"),
            "object": "invoice",
            "customer": subscription["customer"],
            "number": "T-1",
            "status": "paid",
            "lines": {
                "object": "list",
                "data": [
                    {
                        "id": new_id("il"),
                        "object": "line_item",
                        "pricing": {
                            "type": "price_details",
                            "price_details": {"price": subscription["items"]["data"][0]["price"]["id"]},
                        },
                    }
                ],
            },
        }

    def pay(self, session_id):
        """The customer completes Checkout: a subscription starts and its first invoice is paid."""
        session = self.sessions[session_id]
        subscription = self.subscription(session["customer"], session["price"])
        self.subscriptions[subscription["id"]] = subscription
        session.update(subscription=subscription["id"], status="complete")
        self.send("checkout.session.completed", {k: v for k, v in session.items() if k != "price"})
        self.send("customer.subscription.created", subscription)
        self.send("invoice.paid", self.invoice(subscription))
        return session

    def update_subscription(self, subscription_id, params):
        subscription = self.subscriptions[subscription_id]
        if "cancel_at_period_end" in params:
            subscription["cancel_at_period_end"] = params["cancel_at_period_end"] == "true"
        if "items" in params:
            subscription["items"]["data"][0]["price"] = {"id": params["items"][0]["price"], "object": "price"}
            self.send("customer.subscription.updated", subscription)
            self.send("invoice.paid", self.invoice(subscription))
        elif "cancel_at_period_end" in params:
            self.send("customer.subscription.updated", subscription)
        return subscription

    def end_period(self, subscription_id):
        """The period ends on a subscription set to cancel: Stripe deletes it."""
        subscription = self.subscriptions[subscription_id]
        subscription["status"] = "canceled"
        self.send("customer.subscription.deleted", subscription)

    def event(self, type_, obj, created=None) -> dict:
        return {
            "id": new_id("evt"),
            "object": "event",
            "type": type_,
            "api_version": "2026-10-28.endive",
            "created": int(time.time()) if created is None else created,
            "data": {"object": obj},
        }

    def send(self, type_, obj, created=None) -> dict:
        event = self.event(type_, obj, created)
        self.deliver(event)
        return event

    def deliver(self, event, secret=None) -> int:
        """POST an event to our endpoint, signed as Stripe signs it; the HTTP status we answered."""
        payload = json.dumps(event).encode()
        request = urllib.request.Request(
            self.webhook_url,
            data=payload,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Stripe-Signature": signature_header(payload, secret or self.webhook_secret),
            },
        )
        self.sent_events.append(event)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
