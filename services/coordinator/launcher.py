"""`ptzjepa up`: nodes as local processes (embedded Redis, per-node services, shared workers).

Per node (site): its camera service, its coordinator, a worker for its node queues (camera and
control) and one for its agent queue. Shared by all nodes, as a pool of training workers would
be: one world-model worker and one dreamer worker (their jobs name the node they work for).
Children are started by module path (`python -m uvicorn --factory ...`, `python -m shared.worker`)
so this module imports no other service. Each child logs to `<data_dir>/logs/<name>.log`; start-up
waits for every service's readiness with a deadline and reports the log tail of one that fails.

How children are started, stopped and tied to the launcher's life: services/coordinator/processes.py;
the record of a running node and what a new one does about a stale one:
services/coordinator/node_record.py; restarting children that die: services/coordinator/supervisor.py.
Stopping sends SIGTERM to every child, then SIGKILL to each child's process group after
`services.stop_grace_s`.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
from pydantic import SecretStr

from services.coordinator import node_record
from services.coordinator.processes import Child, kill_group, spawn, stop_all
from services.coordinator.supervisor import Publisher, RestartPolicy, Supervisor
from shared.config import Settings, child_environment
from shared.keys import Keys
from shared.redis import EmbeddedRedis

log = logging.getLogger(__name__)

NODE_WORKERS: tuple[tuple[str, ...], ...] = (("camera", "control"), ("agent",))
SHARED_WORKERS: tuple[tuple[str, ...], ...] = (("worldmodel",), ("dreamer",))

__all__ = ["Child", "LaunchError", "Launcher", "Node", "site_settings"]


class LaunchError(RuntimeError):
    pass


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


def restart_policy(settings: Settings) -> RestartPolicy:
    s = settings.services
    return RestartPolicy(max_restarts=s.child_max_restarts, window_s=s.child_restart_window_s,
                         backoff_max_s=s.child_backoff_max_s)


class Launcher:
    """The processes of one or more nodes sharing a Redis and a store. A context manager.

    `supervise=True` (what `ptzjepa up` uses) restarts children that die; tests that kill
    children on purpose and restart them themselves keep the default. Children get the
    parent-death signal when the thread that started them ends (services/coordinator/processes.py):
    the thread that calls `start()` must live as long as the node.
    """

    def __init__(self, sites: list[Settings], ready_timeout_s: float = 90.0, supervise: bool = False):
        if not sites:
            raise ValueError("at least one node")
        self.sites = list(sites)
        self.ready_timeout_s = ready_timeout_s
        self.supervise = supervise
        self.data_dir = Path(sites[0].data_dir).resolve()
        self.redis: EmbeddedRedis | None = None
        self.children: list[Child] = []
        self.supervisor: Supervisor | None = None
        self.stale_report: list[str] = []  # what was found and done about a dead node's leftovers
        self._redis_pid: int | None = None
        self._redis_lock = threading.Lock()
        self._record_lock = threading.Lock()
        self._recorded = False
        self._started_at = time.time()

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
        try:
            self.stale_report = node_record.clear_stale_node(self.data_dir)
        except node_record.NodeRunning as exc:
            raise LaunchError(str(exc)) from None
        self._recorded = True
        if self.sites[0].redis_url is None:
            self._start_embedded_redis()
            self.write_record()  # a daemon: recorded at once, so a later launcher can stop it
        self.children = self._plan()
        self._check_ports()
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for child in self.children:
            child.log_path = logs / f"{child.name}.log"
            child.log_file = open(child.log_path, "ab")
            spawn(child)
        self.write_record()
        self._wait_ready()
        first = self.sites[0]
        password = first.redis_password.get_secret_value() if first.redis_password else None
        assert first.redis_url is not None
        self.supervisor = Supervisor(self.children, self._respawn, kill_group,
                                     Publisher(first.redis_url, password, Keys(first.redis_prefix)),
                                     restart_policy(first), on_change=self.write_record,
                                     watch=self._watch_redis)
        if self.supervise:
            self.supervisor.start()
        else:
            self.supervisor.publish_all()

    def _start_embedded_redis(self) -> None:
        self.redis = EmbeddedRedis(self.data_dir)
        self._redis_pid = self._embedded_redis_pid()
        update: dict = {"redis_url": self.redis.url}
        password = getattr(self.redis, "password", None)  # an embedded Redis with a password
        if password:
            update["redis_password"] = SecretStr(password)
        self.sites = [s.model_copy(update=update) for s in self.sites]

    def _plan(self) -> list[Child]:
        children: list[Child] = []
        multi = len(self.sites) > 1
        for site in self.sites:
            env = child_environment(site, self.data_dir / "run" / site.node)
            s = site.services
            tag = f"{site.node}-" if multi else ""
            children.append(Child(f"{tag}camera", _uvicorn("services.camera.app:create_app", s.host,
                                  s.camera_port), env, f"{s.camera_base_url()}/readyz", site.node,
                                  [s.camera_port]))
            children += [self._worker(f"{tag}worker-{'-'.join(q)}", site, env, i, q)
                         for i, q in enumerate(NODE_WORKERS)]
            children.append(Child(f"{tag}coordinator", _uvicorn(
                "services.coordinator.app:create_app", s.host, s.coordinator_port), env,
                f"{self.coordinator_url_of(site)}/readyz", site.node, [s.coordinator_port]))
        first = self.sites[0]
        env = child_environment(first, self.data_dir / "run" / first.node)
        children += [self._worker(f"worker-{'-'.join(q)}", first, env, len(NODE_WORKERS) + i, q)
                     for i, q in enumerate(SHARED_WORKERS)]
        return children

    def _check_ports(self) -> None:
        """Fail at once, naming the port, when one of ours is taken (rather than by a child's
        log tail after the readiness deadline)."""
        for child in self.children:
            site = next(s for s in self.sites if s.node == child.node)
            for port in child.ports:
                with socket.socket() as sock:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    try:
                        sock.bind((site.services.host, port))
                    except OSError as exc:
                        raise LaunchError(f"port {port} of {child.name} on {site.services.host} is "
                                          f"taken by another process ({exc.strerror})") from None

    @staticmethod
    def _worker(name: str, site: Settings, env: dict[str, str], index: int,
                queues: tuple[str, ...]) -> Child:
        base = site.services.worker_metrics_port
        port = base + index if base else 0
        url = f"http://{site.services.host}:{port}/metrics" if port else None
        return Child(name, [sys.executable, "-m", "shared.worker", *queues, "--metrics-port", str(port)],
                     env, url, site.node, [port] if port else [])

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

    # ---- the node record ----------------------------------------------------------------------------
    def write_record(self) -> None:
        """Write `<data_dir>/run/node.json`: this launcher, its children and its Redis."""
        launcher = node_record.process_entry(os.getpid())
        launcher.update(cmdline=node_record.cmdline(os.getpid()), started_at=self._started_at)
        children = [{"name": c.name, "node": c.node, "ports": c.ports,
                     **node_record.process_entry(c.pid)} for c in self.children if c.pid]
        record = {"data_dir": str(self.data_dir), "coordinator_url": self.coordinator_url,
                  "launcher": launcher, "children": children,
                  "redis": node_record.process_entry(self._redis_pid) if self._redis_pid else None}
        with self._record_lock:
            node_record.write_record(self.data_dir, record)

    # ---- children -----------------------------------------------------------------------------------
    def child(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)

    def _respawn(self, child: Child) -> None:
        spawn(child)

    def restart(self, name: str) -> Child:
        """Start a child again (after it died or was killed), with the same command and log.
        It gets the parent-death signal when the calling thread ends."""
        child = self.child(name)
        if child.running():
            raise LaunchError(f"{name} is still running")
        if self.supervise and self.supervisor is not None:
            try:
                self.supervisor.start_by_hand(child)  # not at the same time as the supervisor
            except RuntimeError as exc:
                raise LaunchError(str(exc)) from None
        else:
            if child.proc is not None:
                kill_group(child)  # what it forked may still hold its ports
            spawn(child)
        self.write_record()
        return child

    def kill(self, name: str) -> None:
        """SIGKILL a child and everything it started, as when its container dies."""
        kill_group(self.child(name))

    def failed_children(self) -> list[str]:
        """Children that ended and that nobody restarts (all ended ones when not supervising)."""
        if self.supervise and self.supervisor is not None:
            return [name for name, st in self.supervisor.states.items() if st.state == "gave_up"]
        return [c.name for c in self.children if c.proc is not None and c.proc.poll() is not None]

    def child_states(self) -> dict[str, dict]:
        """Each child's supervision record (state, pid, restarts, last_exit, since)."""
        if self.supervisor is None:
            return {}
        return {c.name: self.supervisor.states[c.name].record(c.pid) for c in self.children}

    # ---- the embedded Redis -------------------------------------------------------------------------
    def _embedded_redis_pid(self) -> int | None:
        process = getattr(self.redis, "_process", None) or getattr(self.redis, "_server", None)
        pid = getattr(self.redis, "pid", None) or getattr(process, "pid", None)
        return int(pid) if pid else None

    def restart_redis(self) -> None:
        """Stop the embedded Redis and start it again on the same URL (its data kept)."""
        if self.redis is None:
            raise LaunchError("this node uses an external Redis: restart it where it runs")
        restart = getattr(self.redis, "restart", None)
        if restart is None:
            raise LaunchError("this EmbeddedRedis cannot restart (no restart() method)")
        with self._redis_lock:
            restart()
            self._redis_pid = self._embedded_redis_pid()
        self.write_record()

    def _watch_redis(self) -> None:
        """Restart the embedded Redis when its server died (called by the supervisor)."""
        if self.redis is None or self._redis_pid is None or not self._redis_lock.acquire(blocking=False):
            return
        try:
            info = node_record.process_info(self._redis_pid)
            if info is not None and not info.zombie:
                return
            restart = getattr(self.redis, "restart", None)
            dead_pid, self._redis_pid = self._redis_pid, None
            if restart is None:
                log.error("the embedded redis-server (pid %s) died and cannot be restarted", dead_pid)
                return
            log.error("the embedded redis-server (pid %s) died; restarting it", dead_pid)
            restart()
            self._redis_pid = self._embedded_redis_pid()
        finally:
            self._redis_lock.release()
        self.write_record()
        if self.supervisor is not None:
            self.supervisor.publisher.event("node.redis_restarted", self.settings.node,
                                            reason=f"embedded redis-server (pid {dead_pid}) died")

    # ---- stopping -------------------------------------------------------------------------------------
    def stop(self, grace_s: float | None = None) -> None:
        """SIGTERM every child, SIGKILL each child's group after the grace period
        (`services.stop_grace_s` by default), stop the embedded Redis, remove the node record."""
        grace = self.settings.services.stop_grace_s if grace_s is None else grace_s
        if self.supervisor is not None:
            self.supervisor.pause()
        stop_all(self.children, grace)
        if self.supervisor is not None:
            for child in self.children:
                self.supervisor.mark(child, "stopped")
            self.supervisor.publisher.flush()
            self.supervisor.publisher.close()
            self.supervisor.close()
            self.supervisor = None
        for child in self.children:
            if child.log_file:
                child.log_file.close()
                child.log_file = None
        self.children = []
        if self.redis is not None:
            self.redis.close()
            self.redis = None
        if self._recorded:
            node_record.delete_record(self.data_dir, os.getpid())
            self._recorded = False

    def __enter__(self) -> Launcher:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Node(Launcher):
    """One node: the embedded default."""

    def __init__(self, settings: Settings, ready_timeout_s: float = 90.0, supervise: bool = False):
        super().__init__([settings], ready_timeout_s, supervise)
