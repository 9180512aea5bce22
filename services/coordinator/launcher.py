"""`ptzjepa up`: one node as local processes (embedded Redis, camera API, workers, coordinator).

Children are started by module path (`python -m uvicorn --factory ...`, `python -m shared.worker`)
so this module imports no other service. Each child logs to `<data_dir>/logs/<name>.log`; start-up
waits for every HTTP service's /readyz with a deadline and reports the log tail of one that fails.
Stopping sends SIGTERM (rq workers finish their current job), then SIGKILL after a grace period.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared.config import Settings, child_environment
from shared.redis import EmbeddedRedis

log = logging.getLogger(__name__)


class LaunchError(RuntimeError):
    pass


@dataclass
class Child:
    name: str
    argv: list[str]
    ready_url: str | None = None
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    _log_file: object = field(default=None, repr=False)


def _uvicorn(app: str, host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "--factory", app, "--host", host, "--port", str(port),
            "--log-level", "warning", "--no-access-log"]


class Node:
    """The processes of one node. Use as a context manager; `stop()` is safe to call twice."""

    # One worker process per queue, so a long world-model training never delays a camera move;
    # the small control queue (lifelong restarts) rides with the camera worker.
    WORKER_QUEUES: tuple[tuple[str, ...], ...] = (("camera", "control"), ("worldmodel",),
                                                  ("dreamer",), ("agent",))

    def __init__(self, settings: Settings, ready_timeout_s: float = 60.0):
        self.settings = settings
        self.ready_timeout_s = ready_timeout_s
        self.data_dir = Path(settings.data_dir).resolve()
        self.redis: EmbeddedRedis | None = None
        self.children: list[Child] = []

    @property
    def coordinator_url(self) -> str:
        s = self.settings.services
        return f"http://{s.host}:{s.coordinator_port}"

    @property
    def camera_url(self) -> str:
        return self.settings.services.camera_base_url()

    def start(self) -> "Node":
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        settings = self.settings
        if settings.redis_url is None:
            self.redis = EmbeddedRedis(self.data_dir)
            settings = settings.model_copy(update={"redis_url": self.redis.url})
            self.settings = settings
        env = child_environment(settings, self.data_dir / "run")
        s = settings.services
        self.children = [
            Child("camera", _uvicorn("services.camera.app:create_app", s.host, s.camera_port),
                  f"{self.camera_url}/readyz"),
            *[self._worker(i, q) for i, q in enumerate(self.WORKER_QUEUES)],
            Child("coordinator", _uvicorn("services.coordinator.app:create_app", s.host,
                                          s.coordinator_port), f"{self.coordinator_url}/readyz"),
        ]
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for child in self.children:
            child.log_path = logs / f"{child.name}.log"
            child._log_file = open(child.log_path, "ab")
            child.proc = subprocess.Popen(child.argv, env=env, stdout=child._log_file,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._wait_ready()

    def _worker(self, index: int, queues: tuple[str, ...]) -> Child:
        base = self.settings.services.worker_metrics_port
        port = base + index if base else 0
        url = f"http://{self.settings.services.host}:{port}/metrics" if port else None
        return Child(f"worker-{'-'.join(queues)}",
                     [sys.executable, "-m", "shared.worker", *queues, "--metrics-port", str(port)], url)

    def worker_metrics_urls(self) -> list[str]:
        return [c.ready_url for c in self.children if c.name.startswith("worker-") and c.ready_url]

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        pending = [c for c in self.children if c.ready_url]
        with httpx.Client(timeout=2.0) as http:
            while pending:
                for child in list(pending):
                    if child.proc.poll() is not None:
                        raise LaunchError(f"{child.name} exited with code {child.proc.returncode}; "
                                          f"last log lines:\n{self._tail(child)}")
                    try:
                        if http.get(child.ready_url).status_code == 200:
                            pending.remove(child)
                    except httpx.HTTPError:
                        pass
                if pending and time.monotonic() > deadline:
                    names = ", ".join(c.name for c in pending)
                    raise LaunchError(f"not ready after {self.ready_timeout_s:.0f} s: {names}; "
                                      f"see {pending[0].log_path}:\n{self._tail(pending[0])}")
                if pending:
                    time.sleep(0.2)
        for child in self.children:
            if child.proc.poll() is not None:
                raise LaunchError(f"{child.name} exited with code {child.proc.returncode}:\n"
                                  f"{self._tail(child)}")

    @staticmethod
    def _tail(child: Child, lines: int = 20) -> str:
        try:
            return "\n".join(child.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def failed_children(self) -> list[str]:
        return [c.name for c in self.children if c.proc is not None and c.proc.poll() is not None]

    def stop(self, grace_s: float = 15.0) -> None:
        for child in reversed(self.children):
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", child.name, grace_s)
                child.proc.kill()
                child.proc.wait()
            if child._log_file:
                child._log_file.close()
                child._log_file = None
        self.children = []
        if self.redis is not None:
            self.redis.close()
            self.redis = None

    def __enter__(self) -> "Node":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
