"""The web server's side of the HTTP protocol (gunicorn's uvicorn workers, config/gunicorn.py): the
request head is bounded before Django sees anything, so `make run` without a proxy is as safe as behind
one (docs/deploy.md).

uvicorn's httptools parser keeps reading a header line of any length, and any number of them: a 200 MB
header grew a web process by 400 MB. Here a head larger than WEB_MAX_HEADER_BYTES or with more than
WEB_MAX_HEADERS fields is answered 431 in the API's envelope and the connection closed, after at most two
reads past the bound; a request the parser cannot read (a NUL in a header, say) gets 400 in the envelope
instead of uvicorn's plain text.
"""

import json
import os

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker

from generation.answers.envelope import message

MAX_HEADER_BYTES = int(os.environ.get("WEB_MAX_HEADER_BYTES", 64 * 1024))
MAX_HEADERS = int(os.environ.get("WEB_MAX_HEADERS", 100))


class HeadTooLarge(Exception):
    pass


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded request head and errors in the API's envelope."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reading_head, self.head_began, self.head_bytes, self.header_count = False, False, 0, 0

    def on_message_begin(self):
        super().on_message_begin()
        self.reading_head, self.head_began, self.head_bytes, self.header_count = True, True, 0, 0

    def on_header(self, name: bytes, value: bytes):
        self.header_count += 1
        if self.header_count > MAX_HEADERS:
            raise HeadTooLarge()
        super().on_header(name, value)

    def on_headers_complete(self):
        self.reading_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes):
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, HeadTooLarge):
                return self._refuse_large_head()
            self.logger.warning("Invalid HTTP request received.")
            return self.send_400_response("Invalid API Request: malformed HTTP request")
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                return self.handle_websocket_upgrade()
            self._unsupported_upgrade_warning()
        if self.reading_head:
            # the read a request began in may also hold the end of the one before: count what was parsed
            # of this head (a field still being read is at most this read); every later read is all head
            if self.head_began:
                self.head_began = False
                self.head_bytes = len(self.url) + sum(len(name) + len(value) for name, value in self.headers)
            else:
                self.head_bytes += len(data)
            if self.head_bytes > MAX_HEADER_BYTES:
                self._refuse_large_head()

    def _refuse_large_head(self):
        self.logger.warning("Request head over %d bytes or %d fields: refused", MAX_HEADER_BYTES, MAX_HEADERS)
        self._send_envelope(b"431 Request Header Fields Too Large", "Request header fields too large")

    def send_400_response(self, msg: str):
        self._send_envelope(b"400 Bad Request", msg)

    def _send_envelope(self, status: bytes, text: str):
        """An error answer in the API's envelope, then the connection closed (its rest is never read)."""
        body = json.dumps(message("error", text)).encode()
        head = [b"HTTP/1.1 " + status + b"\r\n"]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [b"content-type: application/json\r\n", b"content-length: %d\r\n" % len(body), b"connection: close\r\n"]
        self.transport.write(b"".join(head) + b"\r\n" + body)
        self.transport.close()
        self.reading_head = False


class Worker(UvicornWorker):
    """gunicorn's uvicorn worker, speaking HTTP through BoundedHttpToolsProtocol."""

    CONFIG_KWARGS = {"loop": "auto", "http": BoundedHttpToolsProtocol}
