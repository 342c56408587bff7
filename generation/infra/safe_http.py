"""Outbound HTTP that cannot be pointed at this machine or its network (SSRF-safe).

Every hop (the first URL and each redirect) is resolved once, every resolved address must be public,
and the connection goes to that vetted address (no second DNS lookup to rebind). Loopback, private,
link-local (cloud metadata), multicast and reserved addresses are refused, except those listed in
`SAFE_HTTP_ALLOWED_NETWORKS` (installs that fetch from their own network, and the tests' local server).
"""

import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import certifi
import urllib3
from django.conf import settings

REDIRECTS = {301, 302, 303, 307, 308}


class UnsafeURL(Exception):
    """The URL is not http(s), points at a forbidden address, or could not be fetched."""


@dataclass
class Response:
    status: int
    headers: dict
    content: bytes


NAT64_NETWORKS = [ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48")]


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo, NAT64): Python calls 2002::/16
    global whatever IPv4 address it tunnels to, so each embedded address is checked on its own."""
    if ip.ipv4_mapped:
        return [ip.ipv4_mapped]
    if ip.sixtofour:
        return [ip.sixtofour]
    if ip.teredo:
        return list(ip.teredo)  # (server, client)
    if any(ip in network for network in NAT64_NETWORKS):
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    return []


def is_allowed_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(ip)):
        return all(is_allowed_address(str(v4)) for v4 in embedded)
    if ip.is_unspecified:
        return False
    if any(ip in ipaddress.ip_network(network) for network in settings.SAFE_HTTP_ALLOWED_NETWORKS):
        return True
    return ip.is_global and not (ip.is_multicast or ip.is_reserved)


def vetted_address(host: str, port: int) -> str:
    """Resolve `host`; refuse it unless every address it resolves to is allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeURL("host not found") from exc
    addresses = [info[4][0] for info in infos]
    if not addresses or not all(is_allowed_address(a) for a in addresses):
        raise UnsafeURL("address not allowed")
    return addresses[0]


def split_url(url: str):
    """(parts, port) of an http(s) URL with a host; UnsafeURL for anything else. No network."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeURL("not a valid URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURL("only http and https URLs are allowed")
    return parts, port


class _Deadline:
    """The total time one exchange may take, whatever phase it is in: when it passes, the sockets of the
    exchange are shut down, so a server that sends a byte a second (each byte restarting the read
    timeout) cannot hold the request past it."""

    def __init__(self, seconds: float):
        self.sockets, self.passed = [], False
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._pass)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock):
        with self._lock:
            self.sockets.append(sock)
            if self.passed:
                _shut(sock)

    def _pass(self):
        with self._lock:
            self.passed = True
            for sock in self.sockets:
                _shut(sock)

    def cancel(self):
        self._timer.cancel()


def _shut(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


def _watched(connection_class, deadline: _Deadline):
    """`connection_class`, handing each socket it connects to `deadline`."""

    class Watched(connection_class):
        def connect(self):
            super().connect()
            deadline.watch(self.sock)

    return Watched


def _pool(scheme: str, host: str, address: str, port: int, timeout, deadline: _Deadline):
    pool = _plain_pool(scheme, host, address, port, timeout)
    pool.ConnectionCls = _watched(pool.ConnectionCls, deadline)
    return pool


def _plain_pool(scheme: str, host: str, address: str, port: int, timeout):
    if scheme == "https":
        return urllib3.HTTPSConnectionPool(
            address,
            port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            server_hostname=host,
            assert_hostname=host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
        )
    return urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False, maxsize=1)


def request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict | None = None,
    max_bytes: int,
    follow_redirects: bool = True,
) -> Response:
    """One HTTP exchange (following up to SAFE_HTTP_MAX_REDIRECTS redirects) with bounded size, and bounded
    time: SAFE_HTTP_TOTAL_TIMEOUT for all of it (connecting, headers, every read, every redirect)."""
    watchdog = _Deadline(settings.SAFE_HTTP_TOTAL_TIMEOUT)
    try:
        response = _exchange(method, url, body, headers, max_bytes, follow_redirects, watchdog)
    except UnsafeURL:
        if watchdog.passed:
            raise UnsafeURL("took too long") from None
        raise
    finally:
        watchdog.cancel()
    if watchdog.passed:  # a body without a length, cut short by the deadline
        raise UnsafeURL("took too long")
    return response


def _exchange(method, url, body, headers, max_bytes, follow_redirects, watchdog) -> Response:
    deadline = time.monotonic() + settings.SAFE_HTTP_TOTAL_TIMEOUT
    timeout = urllib3.Timeout(connect=settings.SAFE_HTTP_CONNECT_TIMEOUT, read=settings.SAFE_HTTP_READ_TIMEOUT)
    for _ in range(settings.SAFE_HTTP_MAX_REDIRECTS + 1):
        parts, port = split_url(url)
        address = vetted_address(parts.hostname, port)
        host_header = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            response = _pool(parts.scheme, parts.hostname, address, port, timeout, watchdog).urlopen(
                method,
                path,
                body=body,
                headers={"Host": host_header, "User-Agent": "sdxl-api/1", **(headers or {})},
                redirect=False,
                preload_content=False,
                retries=False,
            )
            if follow_redirects and response.status in REDIRECTS and response.headers.get("Location"):
                response.release_conn()
                url = urljoin(url, response.headers["Location"])
                if response.status in (301, 302, 303):
                    method, body = "GET", None
                continue
            return Response(response.status, dict(response.headers), _read(response, max_bytes, deadline))
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise UnsafeURL("could not be fetched") from exc
    raise UnsafeURL("too many redirects")


def _read(response, max_bytes: int, deadline: float) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise UnsafeURL("too large")
    chunks, size = [], 0
    for chunk in response.stream(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise UnsafeURL("too large")
        if time.monotonic() > deadline:
            raise UnsafeURL("took too long")
        chunks.append(chunk)
    return b"".join(chunks)
