"""`ptzjepa up`: nodes as local processes (embedded Redis, per-node services, shared workers).

Per node (site): its camera service, its coordinator, a worker for its node queues (camera and
control) and one for its agent queue. Shared by all nodes, as a pool of training workers would
be: one world-model worker and one dreamer worker (their jobs name the node they work for).
Children are started by module path (`python -m uvicorn --factory ...`, `python -m shared.worker`)
so this module imports no other service. Each child logs to `<data_dir>/logs/<name>.log`; start-up
waits for every service's readiness with a deadline and reports the log tail of one that fails.
Stopping sends SIGTERM (rq workers finish their current job), then SIGKILL after a grace period.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from shared.config import Settings, child_environment
from shared.redis import EmbeddedRedis

log = logging.getLogger(__name__)

NODE_WORKERS: tuple[tuple[str, ...], ...] = (("camera", "control"), ("agent",))
SHARED_WORKERS: tuple[tuple[str, ...], ...] = (("worldmodel",), ("dreamer",))


class LaunchError(RuntimeError):
    pass


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    ready_url: str | None = None
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    def exit_code(self) -> int | None:
        """The exit code once the process ended; None while it runs (or before it started)."""
        return self.proc.poll() if self.proc is not None else None


def _uvicorn(app: str, host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "--factory", app, "--host", host, "--port", str(port),
            "--log-level", "warning", "--no-access-log"]


def site_settings(base: Settings, nodes: int) -> list[Settings]:
    """Settings of `nodes` simulated sites from one base: node0.., a camera seed each, ports
    spaced by 10 from the base ports (node i: base + 10 i)."""
    if nodes < 1:
        raise ValueError("nodes must be at least 1")
    if nodes == 1:
        return [base]
    sites = []
    for i in range(nodes):
        s = base.services
        services = s.model_copy(update={"coordinator_port": s.coordinator_port + 10 * i,
                                        "camera_port": s.camera_port + 10 * i,
                                        "worker_metrics_port": s.worker_metrics_port + 10 * i
                                        if s.worker_metrics_port else 0,
                                        "camera_url": None})
        sim = base.camera.sim.model_copy(update={"seed": base.camera.sim.seed + i})
        camera = base.camera.model_copy(update={"sim": sim, "name": f"cam{i}"})
        sites.append(base.model_copy(update={"node": f"node{i}", "services": services, "camera": camera}))
    return sites


class Launcher:
    """The processes of one or more nodes sharing a Redis and a store. A context manager."""

    def __init__(self, sites: list[Settings], ready_timeout_s: float = 90.0):
        if not sites:
            raise ValueError("at least one node")
        self.sites = list(sites)
        self.ready_timeout_s = ready_timeout_s
        self.data_dir = Path(sites[0].data_dir).resolve()
        self.redis: EmbeddedRedis | None = None
        self.children: list[Child] = []

    # ---- addresses ------------------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        return self.sites[0]

    def coordinator_url_of(self, site: Settings) -> str:
        return f"http://{site.services.host}:{site.services.coordinator_port}"

    @property
    def coordinator_url(self) -> str:
        return self.coordinator_url_of(self.sites[0])

    @property
    def camera_url(self) -> str:
        return self.sites[0].services.camera_base_url()

    def worker_metrics_urls(self) -> list[str]:
        return [c.ready_url for c in self.children if c.name.startswith("worker-") and c.ready_url]

    # ---- life cycle -------------------------------------------------------------------------------
    def start(self) -> Launcher:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        if self.sites[0].redis_url is None:
            self.redis = EmbeddedRedis(self.data_dir)
            self.sites = [s.model_copy(update={"redis_url": self.redis.url}) for s in self.sites]
        multi = len(self.sites) > 1
        for site in self.sites:
            env = child_environment(site, self.data_dir / "run" / site.node)
            s = site.services
            tag = f"{site.node}-" if multi else ""
            self.children.append(Child(f"{tag}camera", _uvicorn("services.camera.app:create_app", s.host,
                                       s.camera_port), env, f"{s.camera_base_url()}/readyz"))
            self.children += [self._worker(f"{tag}worker-{'-'.join(q)}", site, env, i, q)
                              for i, q in enumerate(NODE_WORKERS)]
            self.children.append(Child(f"{tag}coordinator", _uvicorn(
                "services.coordinator.app:create_app", s.host, s.coordinator_port), env,
                f"{self.coordinator_url_of(site)}/readyz"))
        first = self.sites[0]
        env = child_environment(first, self.data_dir / "run" / first.node)
        self.children += [self._worker(f"worker-{'-'.join(q)}", first, env, len(NODE_WORKERS) + i, q)
                          for i, q in enumerate(SHARED_WORKERS)]
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for child in self.children:
            child.log_path = logs / f"{child.name}.log"
            child._log_file = open(child.log_path, "ab")
            child.proc = _spawn(child)
        self._wait_ready()

    @staticmethod
    def _worker(name: str, site: Settings, env: dict[str, str], index: int,
                queues: tuple[str, ...]) -> Child:
        base = site.services.worker_metrics_port
        port = base + index if base else 0
        url = f"http://{site.services.host}:{port}/metrics" if port else None
        return Child(name, [sys.executable, "-m", "shared.worker", *queues, "--metrics-port", str(port)],
                     env, url)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        pending = [c for c in self.children if c.ready_url]
        with httpx.Client(timeout=2.0) as http:
            while pending:
                for child in list(pending):
                    code = child.exit_code()
                    if code is not None:
                        raise LaunchError(f"{child.name} exited with code {code}; "
                                          f"last log lines:\n{self._tail(child)}")
                    try:
                        if child.ready_url and http.get(child.ready_url).status_code == 200:
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
            code = child.exit_code()
            if code is not None:
                raise LaunchError(f"{child.name} exited with code {code}:\n"
                                  f"{self._tail(child)}")

    @staticmethod
    def _tail(child: Child, lines: int = 20) -> str:
        if child.log_path is None:
            return "(no log)"
        try:
            return "\n".join(child.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def child(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)

    def restart(self, name: str) -> Child:
        """Start a child again (after it died or was killed), with the same command and log."""
        child = self.child(name)
        if child.proc is not None and child.proc.poll() is None:
            raise LaunchError(f"{name} is still running")
        child.proc = _spawn(child)
        return child

    def kill(self, name: str) -> None:
        """SIGKILL a child and everything it started, as when its container dies."""
        child = self.child(name)
        _kill_group(child)

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
            _kill_group(child)  # also what it started (rq's scheduler process), if left behind
            if child._log_file:
                child._log_file.close()
                child._log_file = None
        self.children = []
        if self.redis is not None:
            self.redis.close()
            self.redis = None

    def __enter__(self) -> Launcher:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _spawn(child: Child) -> subprocess.Popen:
    # Each child leads its own process group, so that stopping or killing it also ends the
    # processes it started (an rq worker forks a scheduler) instead of leaving them orphaned.
    return subprocess.Popen(child.argv, env=child.env, stdout=child._log_file,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)


def _kill_group(child: Child) -> None:
    if child.proc is None:
        return
    try:
        os.killpg(child.proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    child.proc.wait()


class Node(Launcher):
    """One node: the embedded default."""

    def __init__(self, settings: Settings, ready_timeout_s: float = 90.0):
        super().__init__([settings], ready_timeout_s)
