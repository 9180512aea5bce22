"""Real servers on loopback for tests: uvicorn in a thread, processes with a clean shutdown."""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import uvicorn

# Ports handed out by this process. Tests pick ports below the kernel's ephemeral range: a port
# the kernel picks for bind(0) or for an outgoing connection (every httpx and Redis client takes
# one) can be taken again between our check and the server's own bind, a port below it cannot.
_HANDED_OUT: set[int] = set()
_LOW, _HIGH = 20000, 32000


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    return free_port_block(1)


def free_port_block(n: int, tries: int = 500) -> int:
    """The first of `n` consecutive free ports (the launcher numbers worker metrics ports so),
    none handed out before by this process and all outside the ephemeral range."""
    high = min(_HIGH, _ephemeral_low()) - n
    rng = random.Random()
    for _ in range(tries):
        base = rng.randrange(_LOW, high)
        block = range(base, base + n)
        if any(p in _HANDED_OUT for p in block):
            continue
        if all(_bindable(p) for p in block):
            _HANDED_OUT.update(block)
            return base
    raise RuntimeError(f"no block of {n} free ports found")


class ThreadedServer:
    """A FastAPI app served by a real uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, app, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"uvicorn did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class WorkerProcess:
    """A real rq worker (`python -m shared.worker QUEUES`) in a subprocess with the given env."""

    def __init__(self, queues: list[str], env: dict[str, str], log_path: Path):
        self.argv = [sys.executable, "-m", "shared.worker", *queues]
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> WorkerProcess:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_for(predicate, timeout_s: float, interval_s: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def wait_http_ok(url: str, timeout_s: float = 20) -> None:
    def ok():
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False
    wait_for(ok, timeout_s, what=url)
