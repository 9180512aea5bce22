"""The launcher's hold on its children: they die with it however it dies, a clean stop ends them
all within the grace period, and a new launcher finds what an old one of the same data directory
left behind (a live node: refused; a dead one's leftovers: killed and reported)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from services.coordinator import node_record
from services.coordinator.launcher import LaunchError, Node
from shared.store import Store
from tests.support.servers import wait_for
from tests.support.settings import make_settings

ROOT = Path(__file__).resolve().parents[2]


def _gone(pid: int) -> bool:
    info = node_record.process_info(pid)
    return info is None or info.zombie


def _sleeper(env: dict[str, str] | None = None, fork: bool = False) -> subprocess.Popen:
    """A process in its own group that sleeps (and forks a sleeping copy of itself)."""
    code = "import os, time\n" + ("os.fork()\n" if fork else "") + "time.sleep(120)\n"
    return subprocess.Popen([sys.executable, "-c", code], env=env or dict(os.environ),
                            start_new_session=True)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_live_launcher_of_the_same_data_dir_is_refused_with_how_to_stop_it(tmp_path):
    settings = make_settings(tmp_path)
    data_dir = Path(settings.data_dir).resolve()
    other = _sleeper()
    try:
        wait_for(lambda: node_record.cmdline(other.pid), 5)
        launcher = {**node_record.process_entry(other.pid), "cmdline": node_record.cmdline(other.pid)}
        record = {"launcher": launcher, "coordinator_url": "http://127.0.0.1:1234", "children": []}
        node_record.write_record(data_dir, record)
        started = time.monotonic()
        with pytest.raises(LaunchError) as err:
            Node(settings).start()
        assert time.monotonic() - started < 5  # refused before anything started
        message = str(err.value)
        assert f"pid {other.pid}" in message and "http://127.0.0.1:1234" in message
        assert "ptzjepa down" in message
        assert node_record.read_record(data_dir) == record  # the live node's record is left alone
        assert not (data_dir / "logs").exists()
    finally:
        other.kill()
        other.wait()


def test_a_dead_launchers_children_are_killed_and_reported_strangers_are_not(tmp_path):
    data_dir = tmp_path / "data"
    run_dir = data_dir / "run" / "node0"
    ours = _sleeper({**os.environ, "PTZJEPA_CONFIG": str(run_dir / "settings.yaml")}, fork=True)
    stranger = _sleeper()  # recorded with the wrong start time: a pid that was reused since
    try:
        wait_for(lambda: len(node_record.group_members(ours.pid)) == 2, 10, what="the fork")
        forked = next(p for p in node_record.group_members(ours.pid) if p != ours.pid)
        record = {"launcher": {"pid": _dead_pid(), "start_ticks": 1, "cmdline": ["ptzjepa", "up"]},
                  "coordinator_url": "http://127.0.0.1:1",
                  "children": [{"name": "worker-worldmodel", **node_record.process_entry(ours.pid)},
                               {"name": "camera", "pid": stranger.pid, "start_ticks": 1}]}
        node_record.write_record(data_dir, record)
        done = node_record.clear_stale_node(data_dir)
        ours.wait(5)
        assert _gone(ours.pid) and _gone(forked)
        assert stranger.poll() is None  # not proven ours: left alone
        text = "\n".join(done)
        assert f"killed worker-worldmodel (pid {ours.pid})" in text and str(forked) in text
        assert "is gone" in text and "camera" not in text
        assert node_record.read_record(data_dir) is None
    finally:
        for proc in (ours, stranger):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_a_port_taken_by_a_stranger_is_named_before_anything_starts(tmp_path, redis_url):
    settings = make_settings(tmp_path, redis_url)
    port = settings.services.coordinator_port
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        with pytest.raises(LaunchError, match=f"port {port} of coordinator"):
            Node(settings).start()
    assert not (Path(settings.data_dir) / "logs").exists()


LAUNCHER_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from services.coordinator.launcher import Node
    from tests.support.settings import make_settings
    node = Node(make_settings(Path(sys.argv[1]), None)).start()
    redis_pid = node._redis_pid
    print(json.dumps({"children": [c.pid for c in node.children], "redis": redis_pid}), flush=True)
    time.sleep(600)
""")


@pytest.mark.integration
def test_children_die_with_a_killed_launcher_and_a_new_one_clears_what_is_left(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER_SCRIPT, str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline())
        children = started["children"]
        assert len(children) == 6 and all(not _gone(pid) for pid in children)
        proc.kill()  # SIGKILL: no handler of the launcher runs
        proc.wait()
        killed_at = time.monotonic()
        wait_for(lambda: all(_gone(pid) for pid in children), 5, interval_s=0.05,
                 what="the children to die with their launcher")
        print(f"children gone {time.monotonic() - killed_at:.2f} s after the launcher's SIGKILL")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The embedded redis-server gets SIGTERM when its launcher dies (and saves as it stops); one
    # still there when the next launcher starts is stopped by it.
    settings = make_settings(tmp_path, None)
    with Node(settings) as node:
        if started["redis"]:
            assert _gone(started["redis"])
        record = node_record.read_record(Path(settings.data_dir))
        assert record is not None and record["launcher"]["pid"] == os.getpid()
        assert {c["name"] for c in record["children"]} == {c.name for c in node.children}
        assert httpx.get(f"{node.coordinator_url}/readyz", timeout=5).status_code == 200
    assert node_record.read_record(Path(settings.data_dir)) is None  # removed on a clean stop


@pytest.mark.integration
def test_a_clean_stop_with_a_phase_running_ends_every_child_within_the_grace(tmp_path, redis_url):
    settings = make_settings(tmp_path, redis_url, camera={"sim": {"move_latency_s": 0.05}})
    node = Node(settings).start()
    try:
        with httpx.Client(base_url=node.coordinator_url, timeout=10) as http:
            cycle = http.post("/v1/cycles", json={"collect": {"iterations": 50, "movements": 20}}).json()
            wait_for(lambda: (http.get(f"/v1/cycles/{cycle['id']}").json()["phases"][0]
                              .get("progress") or {}).get("done", 0) >= 3, 60, what="collecting")
        pids = [c.pid for c in node.children]
    except BaseException:
        node.stop()
        raise
    started = time.monotonic()
    node.stop()
    took = time.monotonic() - started
    assert all(_gone(pid) for pid in pids if pid)
    print(f"clean stop with a phase running: every child gone in {took:.2f} s")
    assert took < settings.services.stop_grace_s
    # nothing the store said was written is lost: every manifest lists frames that exist
    store = Store(settings.resolved_store_url())
    for rel in store.list("manifests/node0", ".jsonl"):
        for frame in store.read_manifest(rel):
            assert store.fs.exists(store.full(frame.path)), frame.path
