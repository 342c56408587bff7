"""The web tier as production serves it — config/asgi.py over uvicorn with the project's HTTP protocol
(config/web.py) — in a thread of the test process, standing in for pytest-django's WSGI live server: every
test that talks HTTP goes through the ASGI application, waiting on its event loop included, and sees the
test database."""

import threading
import time

import uvicorn
from django.test.utils import modify_settings

from config import redis_server
from config.asgi import application
from config.web import BoundedHttpToolsProtocol


class AsgiServer:
    def __init__(self, host: str = "localhost"):
        self.host, self.port = host, redis_server.free_port()
        config = uvicorn.Config(
            application,
            host="127.0.0.1",
            port=self.port,
            http=BoundedHttpToolsProtocol,
            lifespan="off",
            log_level="warning",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="asgi-live-server", daemon=True)
        # what pytest-django's live_server helper enables for each test that uses it
        self._live_server_modified_settings = modify_settings(ALLOWED_HOSTS={"append": host})
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the ASGI test server did not start")
            time.sleep(0.01)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __str__(self) -> str:
        return self.url

    def __add__(self, other: str) -> str:
        return f"{self}{other}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=30)
