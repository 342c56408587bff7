"""A real local HTTP server for tests: serves canned responses and records every request it gets."""

import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict
    body: bytes
    received_at: float = field(default_factory=time.time)


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    trickle: float = 0.0  # seconds between the body's bytes (a slow server)


class LocalServer:
    """Routes map a path to a Route, or to a list of Routes answered in turn (the last one repeats)."""

    def __init__(self, host: str = "127.0.0.1"):
        self.routes: dict[str, Route | list[Route]] = {}
        self.requests: list[Recorded] = []
        self.connections = 0
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def setup(self):
                server.connections += 1
                super().setup()

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.requests.append(Recorded(self.command, self.path, dict(self.headers), body))
                route = server.routes.get(self.path.split("?")[0], Route(status=404))
                if isinstance(route, list):
                    route = route.pop(0) if len(route) > 1 else route[0]
                if route.delay:
                    threading.Event().wait(route.delay)
                self.send_response(route.status)
                for name, value in route.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                if not route.trickle:
                    self.wfile.write(route.body)
                for index in range(len(route.body) if route.trickle else 0):
                    self.wfile.write(route.body[index : index + 1])
                    self.wfile.flush()
                    if server.stopping.wait(route.trickle):
                        return

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client that hangs up early (size caps, timeouts) is what some tests do

        self.httpd = Server((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class TcpRelay:
    """A local TCP port that passes connections on to `target` (host, port) once `open()` is called; before
    that nothing listens there, as when the server behind it is down."""

    def __init__(self, target: tuple[str, int], port: int):
        self.target, self.port, self.listener = target, port, None

    def open(self):
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while self.listener is not None:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        if self.listener is not None:
            listener, self.listener = self.listener, None
            listener.close()
