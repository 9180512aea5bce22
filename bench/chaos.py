"""Chaos benchmark: a node runs learning cycles while a schedule of faults hits it, then the outcome
is checked (issue 21: a killed worker never leaves a cycle hanging).

    python bench/chaos.py --out bench/results/chaos.json [--kills N] [--seed S] [--interval-s T]

One node (one site) as `ptzjepa up` starts it - camera service, coordinator, four rq workers -
with tiny models (the `CHAOS` config: a cycle takes seconds), short lease TTLs and heartbeats, and
phase retries. Its camera driver (Hanwha SUNAPI) talks over real HTTP to a camera emulator that
the bench serves in-process, so camera faults go through the node's real camera client. Cycles run
back to back (`--mode post`: the bench starts the next when one ends; `--mode lifelong`: the
node's lifelong mode). Every `--interval-s` one fault strikes (bench/chaos_faults.py: SIGKILL of
a worker alone or by process group, SIGSTOP of the world-model worker past the lease TTL, a Redis
restart, a camera that times out or answers garbage for a few seconds) until `--kills` faults
were struck; each kill is followed by the child's return (the launcher's supervisor, or the
bench's own restart where the launcher has none).

Then no new cycle starts, the running ones are given until their bound to end, and the checks of
bench/chaos_checks.py run: cycles stuck (still running 60 s + `--cycle-budget-s` after the later
of their start and the last fault that hit them), cycles failed without a reason, corrupt
versions, frames lost from a manifest, leases held by dead or orphaned holders. Per fault: kind,
target, time, the cycle it hit, and the time from the fault to that cycle's end. Progress on
stderr, one line per fault; the JSON goes to --out and stdout; exit status 1 if a check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import random
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import uvicorn
from pydantic import SecretStr

from bench import chaos_checks as checks
from bench.chaos_faults import KINDS, BenchRedis, Fault, Injector, Revival, say, schedule
from bench.output import machine, write_result
from services.camera.emulators import EmulatorApp, EmulatorConfig, build_emulator
from services.camera.sim import SimWorld, SimWorldConfig
from services.coordinator.launcher import Launcher
from shared.config import CameraSettings, ServiceSettings, Settings, load_settings
from shared.keys import Keys
from shared.leases import LeaseManager
from shared.redis import EmbeddedRedis, client_for
from shared.store import Store

CAMERA_USER = "chaos"
LEASE_TTL_S = 2.0
CHAOS: dict[str, Any] = {
    "worldmodel": {
        "model": {"encoder": {"img_size": 32, "patch_size": 8, "dim": 32, "depth": 1, "heads": 2},
                  "predictor": {"dim": 32, "depth": 1, "heads": 2}, "surprise": {"hidden": 16}},
        # long enough to be hit while training (a lease held), short enough for many cycles
        "train": {"epochs": 2, "window_len": 3, "windows_per_batch": 2, "rollout_horizon": 1,
                  "steps": 100_000, "time_budget_s": 3.0},
        "lease_ttl_s": LEASE_TTL_S, "lease_wait_s": 15.0},
    "dreamer": {"dreams": 12, "length": 4, "batch": 6, "shard_dreams": 5, "seed": 3},
    "agent": {"config": {"hidden": [32], "batch_size": 16, "replay_capacity": 1000, "updates": 30},
              "navigate_iterations": 2, "navigate_movements": 3},
    "collect": {"iterations": 2, "movements": 4},
    "cycles": {"backoff_s": 0.5, "max_backoff_s": 2.0},
    "services": {"job_retries": 3, "retry_intervals_s": [1], "job_heartbeat_s": 1, "job_timeout_s": 120},
}
# supervisor settings, applied where the launcher has them: a chaos run kills the same worker
# many times within the default restart window
SUPERVISOR = {"child_max_restarts": 1000, "child_backoff_max_s": 1.0, "stop_grace_s": 5.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--out", required=True, help="where the JSON result goes")
    p.add_argument("--kills", type=int, default=10, help="faults to strike (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seeds the fault order and targets")
    p.add_argument("--interval-s", type=float, default=4.0, help="seconds between faults")
    p.add_argument("--camera-window-s", type=float, default=3.0, help="how long a camera fault lasts")
    p.add_argument("--cycle-budget-s", type=float, default=60.0,
                   help="a cycle's own time budget: stuck = running 60 s + this past its last fault")
    p.add_argument("--mode", choices=("post", "lifelong"), default="post",
                   help="post: the bench starts each cycle; lifelong: the node's lifelong mode")
    p.add_argument("--kinds", default=",".join(KINDS), help=f"fault kinds, from: {', '.join(KINDS)}")
    p.add_argument("--data-dir", type=Path, default=None, help="default: a temporary folder")
    p.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    args = p.parse_args(argv)
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    unknown = set(kinds) - set(KINDS)
    if args.kills < 1 or args.interval_s < 0 or not kinds or unknown:
        p.error(f"need --kills >= 1, --interval-s >= 0 and known --kinds (unknown: {sorted(unknown)})")
    args.kinds = kinds
    return args


def free_ports(n: int, low: int = 12000, high: int = 19999) -> int:
    """The first of `n` consecutive free loopback ports, below the kernel's ephemeral range."""
    rng = random.Random()
    for _ in range(500):
        base = rng.randrange(low, high - n)
        try:
            for port in range(base, base + n):
                with socket.socket() as sock:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {n} consecutive free ports")


class EmulatedCamera:
    """A Hanwha camera emulator served by uvicorn in a thread, with switchable fault windows."""

    def __init__(self, settings_ranges: Any, password: str, seed: int):
        world = SimWorld(SimWorldConfig(seed=seed, pano_width=1024, pano_height=512, ranges=settings_ranges))
        config = EmulatorConfig(user=CAMERA_USER, password=SecretStr(password), settle_s=0.05,
                                width=96, height=96, fault_timeout_s=1.5)
        self.app: EmulatorApp = build_emulator("hanwha", world, config)
        self.port = free_ports(1)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                                    log_level="error", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> EmulatedCamera:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the camera emulator did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def switch(self, rate: float, kinds: tuple[str, ...]) -> None:
        self.app.faults.set_random(rate, kinds)

    def stats_faults(self) -> int:
        return sum(self.app.stats.faults.values())


def build_settings(data_dir: Path, redis_url: str | None, camera_port: int, camera_password: str,
                   token: str) -> Settings:
    config = json.loads(json.dumps(CHAOS))
    services = config.pop("services")
    services.update({"coordinator_port": free_ports(1), "camera_port": free_ports(1),
                     "worker_metrics_port": free_ports(8)})
    services.update({k: v for k, v in SUPERVISOR.items() if k in ServiceSettings.model_fields})
    camera = {"driver": "hanwha", "host": "127.0.0.1", "port": camera_port, "user": CAMERA_USER,
              "password": camera_password, "timeout_s": 1.0, "retries": 1, "backoff_s": 0.05,
              "settle_timeout_s": 5.0, "settle_poll_s": 0.02}
    return load_settings(environ={}, data_dir=data_dir, redis_url=redis_url, redis_prefix="chaos",
                         api_token=token, services=services, camera=camera, **config)


class Api:
    """The coordinator's REST API, riding out the seconds Redis is down."""

    def __init__(self, url: str, token: str):
        self.http = httpx.Client(base_url=url, timeout=10, headers={"Authorization": f"Bearer {token}"})

    def call(self, method: str, path: str, patience_s: float = 30.0, **kw: Any) -> Any:
        deadline = time.monotonic() + patience_s
        while True:
            try:
                r = self.http.request(method, path, **kw)
                if r.status_code < 500:
                    r.raise_for_status()
                    return r.json()
                problem = f"{r.status_code} {r.text[:200]}"
            except httpx.TransportError as exc:
                problem = repr(exc)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{method} {path} kept failing: {problem}")
            time.sleep(0.3)

    def close(self) -> None:
        self.http.close()


class CycleDriver(threading.Thread):
    """Keeps cycles running back to back and remembers every cycle it saw."""

    def __init__(self, api: Api, mode: str):
        super().__init__(daemon=True, name="chaos-cycles")
        self.api, self.mode = api, mode
        self.ids: list[str] = []
        self.current: str | None = None
        self.error: str | None = None
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def _saw(self, cycle_id: str | None) -> None:
        with self._lock:
            self.current = cycle_id
            if cycle_id and cycle_id not in self.ids:
                self.ids.append(cycle_id)

    def run(self) -> None:
        try:
            if self.mode == "lifelong":
                self._saw(self.api.call("POST", "/v1/lifelong/start").get("current_cycle"))
            while not self._halt.is_set():
                self._step()
                self._halt.wait(0.3)
        except Exception as exc:  # reported in the result: the driver must not die silently
            self.error = repr(exc)

    def _step(self) -> None:
        if self.mode == "lifelong":
            self._saw(self.api.call("GET", "/v1/lifelong").get("current_cycle"))
            return
        cur = self.current
        if cur is None or self.api.call("GET", f"/v1/cycles/{cur}")["status"] != "running":
            self._saw(self.api.call("POST", "/v1/cycles")["id"])

    def running_cycle(self) -> str | None:
        with self._lock:
            return self.current

    def running_phase(self) -> tuple[str, str] | None:
        """(phase, queue) of the current cycle's phase that a worker is running, if any."""
        cur = self.running_cycle()
        if cur is None:
            return None
        try:
            view = self.api.call("GET", f"/v1/cycles/{cur}", patience_s=2.0)
        except RuntimeError:
            return None
        started = [p for p in view["phases"] if p.get("status") == "started"]
        return (started[0]["name"], started[0]["queue"]) if started else None

    def finish(self) -> None:
        self._halt.set()
        self.join(timeout=60)
        if self.mode == "lifelong":
            self.api.call("POST", "/v1/lifelong/stop", json={"now": False})


def wait_for_end(api: Api, ids: list[str], faults: list[Fault], budget_s: float) -> dict[str, dict]:
    """Poll the cycles until none runs, or every one still running is past its bound."""
    while True:
        views = {i: api.call("GET", f"/v1/cycles/{i}") for i in ids}
        running = [v for v in views.values() if v["status"] not in checks.ENDED]
        now = time.time()
        if not running or all(now > checks.cycle_bound(v, faults, budget_s) for v in running):
            return views
        time.sleep(1.0)


def strike_all(args: argparse.Namespace, injector: Injector, revival: Revival, t0: float) -> list[Fault]:
    faults = []
    plan = schedule(args.kills, args.seed, args.kinds)
    for i, kind in enumerate(plan, 1):
        until = time.monotonic() + args.interval_s
        while time.monotonic() < until:
            revival.keep_alive()
            time.sleep(min(0.5, max(0.0, until - time.monotonic())))
        fault = injector.strike(kind)
        faults.append(fault)
        extra = " ".join(f"{k}={v}" for k, v in fault.detail.items())
        say(f"[{i}/{len(plan)}] t={fault.at - t0:6.1f}s {kind:<14} {fault.target:<24} "
            f"cycle={fault.cycle} {extra}")
    return faults


def _lease_probe(client: Any, keys: Keys, slots: list[str]) -> Any:
    manager = LeaseManager(client, keys, "chaos-bench")

    def held() -> bool:
        try:
            return any(manager.holders(slots).values())
        except Exception:  # Redis restarting: nothing known to be held
            return False
    return held


def event_counts(api: Api) -> dict[str, int]:
    """How many events of each kind the node's event stream holds (retries, restarts...)."""
    kinds: dict[str, int] = {}
    since = "0-0"
    while True:
        page = api.call("GET", "/v1/events", params={"since": since, "count": 1000})
        for event in page:
            kinds[event["kind"]] = kinds.get(event["kind"], 0) + 1
        if len(page) < 1000:
            return dict(sorted(kinds.items()))
        since = page[-1]["id"]


def outcome(node: Launcher, api: Api, driver: CycleDriver, faults: list[Fault],
            args: argparse.Namespace) -> dict[str, Any]:
    """Let the running cycles end (bounded), then run every check."""
    ids = list(driver.ids)
    ids += [v["id"] for v in api.call("GET", "/v1/cycles", params={"limit": 500}) if v["id"] not in ids]
    views = wait_for_end(api, ids, faults, args.cycle_budget_s)
    settings = node.settings
    client, keys = client_for(settings), Keys(settings.redis_prefix)
    slots = [f"wm_{i:02d}" for i in range(settings.worldmodel.slots)]
    held = _lease_probe(client, keys, slots)
    deadline = time.monotonic() + LEASE_TTL_S + 3.0
    while held() and time.monotonic() < deadline:
        time.sleep(0.2)  # a killed holder's lease runs out after its TTL
    store = Store(settings.resolved_store_url())
    result: dict[str, Any] = {"faults": len(faults)}
    result.update(checks.cycle_summary(list(views.values()), faults, args.cycle_budget_s, time.time()))
    result.update(checks.check_versions(store, LeaseManager(client, keys, "chaos-check"), slots))
    result.update(checks.check_frames(store))
    result.update(checks.check_holders(client, keys, slots))
    result["fault_to_end_s"] = checks.fault_to_end(faults, views)
    result["events"] = event_counts(api)
    client.close()
    return result


def run(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    token, camera_password = secrets.token_urlsafe(24), secrets.token_urlsafe(16)
    embedded = hasattr(EmbeddedRedis, "restart")  # else a Redis of the bench's own, restartable
    bench_redis = None if embedded else BenchRedis(data_dir / "bench-redis", free_ports(1)).start()
    camera = EmulatedCamera(CameraSettings().ranges(), camera_password, args.seed).start()
    supervised = "supervise" in inspect.signature(Launcher.__init__).parameters
    settings = build_settings(data_dir / "node", bench_redis.url if bench_redis else None, camera.port,
                              camera_password, token)
    options: dict[str, Any] = {"supervise": True} if supervised else {}
    t0 = time.time()
    try:
        with Launcher([settings], ready_timeout_s=180.0, **options) as node:
            say(f"node up in {time.time() - t0:.1f} s (supervised: {supervised}, "
                f"redis: {'embedded' if embedded else 'bench-managed'}); data in {data_dir}")
            api = Api(node.coordinator_url, token)
            driver = CycleDriver(api, args.mode)
            driver.start()
            revival = Revival(node, supervised, say)
            client = client_for(node.settings)
            slots = [f"wm_{i:02d}" for i in range(node.settings.worldmodel.slots)]
            restart_redis = node.restart_redis if bench_redis is None else bench_redis.restart
            injector = Injector(node, revival, random.Random(args.seed), lease_ttl_s=LEASE_TTL_S,
                                camera_faults=camera, camera_window_s=args.camera_window_s,
                                restart_redis=restart_redis,
                                lease_held=_lease_probe(client, Keys(node.settings.redis_prefix), slots),
                                current_cycle=driver.running_cycle,
                                running_phase=driver.running_phase)
            t_faults = time.time()
            faults = strike_all(args, injector, revival, t_faults)
            driver.finish()
            revival.keep_alive()
            injecting_s = round(time.time() - t_faults, 1)
            say(f"{len(faults)} faults struck; waiting for the cycles to end")
            result = outcome(node, api, driver, faults, args)
            result["injecting_s"] = injecting_s
            orphans = revival.orphans()
            result["orphans"] = len(orphans)
            result["children_not_back"] = sorted(revival.lost)
            for pid in orphans:  # forks of workers this bench killed: they must not outlive it
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            result["bench_restarts"] = revival.restarts
            result["driver_error"] = driver.error
            client.close()
            api.close()
    finally:
        camera.stop()
        if bench_redis is not None:
            bench_redis.stop()
    result["per_fault"] = [f.as_json() for f in faults]
    result["faults_by_kind"] = {k: sum(f.kind == k for f in faults) for k in args.kinds}
    result["config"] = {"kills": args.kills, "seed": args.seed, "interval_s": args.interval_s,
                        "camera_window_s": args.camera_window_s, "cycle_budget_s": args.cycle_budget_s,
                        "stuck_after_s": checks.STUCK_AFTER_S, "mode": args.mode,
                        "lease_ttl_s": LEASE_TTL_S, "supervised": supervised,
                        "redis": "embedded" if embedded else "bench-managed", "chaos": CHAOS}
    result["stuck_bound"] = (f"a cycle is stuck when it still runs {checks.STUCK_AFTER_S:.0f} s + "
                             f"cycle_budget_s ({args.cycle_budget_s:.0f} s) after the later of its start "
                             "and the last fault that hit it")
    result["duration_s"] = round(time.time() - t0, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_start = os.getloadavg()[0]
    temporary = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="ptzjepa-chaos-")) if temporary else args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    result = run(args, data_dir)
    failed = checks.failures(result)
    result["failed_checks"] = failed
    result["machine"] = machine(load_start)
    write_result(args.out, result)
    if failed:
        say(f"FAILED: {', '.join(failed)}; data kept in {data_dir}")
    elif temporary and not args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
