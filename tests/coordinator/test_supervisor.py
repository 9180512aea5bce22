"""The supervisor of `ptzjepa up`: real child processes, real Redis, real signals.

Small children (a few lines of Python) show the policy (restart after a back-off, give up past
the limit, records and events, riding out a Redis restart, a fork holding the child's port);
one supervised node shows it end to end: a SIGKILLed worker comes back, binds its metrics port
again, and the event stream, the children hash, /metrics and the status page say so.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest

from services.coordinator.children import describe_exit, read_children
from services.coordinator.launcher import Node
from services.coordinator.processes import Child, kill_group, spawn
from services.coordinator.supervisor import Publisher, RestartPolicy, Supervisor
from shared import events
from shared.keys import Keys
from shared.redis import connect
from tests.support.redis_server import RestartableRedis
from tests.support.servers import free_port, wait_for
from tests.support.settings import make_settings

KEYS = Keys("test")
FAST = RestartPolicy(max_restarts=2, window_s=600.0, backoff_first_s=0.1, backoff_max_s=0.4)


def _child(tmp_path: Path, name: str, code: str) -> Child:
    child = Child(name, [sys.executable, "-c", code], dict(os.environ), node="node0")
    child.log_path = tmp_path / f"{name}.log"
    child.log_file = open(child.log_path, "ab")
    spawn(child)
    return child


def _supervise(children: list[Child], url: str, policy: RestartPolicy = FAST) -> Supervisor:
    return Supervisor(children, spawn, kill_group, Publisher(url, None, KEYS), policy,
                      poll_s=0.05).start()


def _kinds(client) -> list[str]:
    return [e.kind for e in events.read_since(client, KEYS)]


def _stop(supervisor: Supervisor, children: list[Child]) -> None:
    supervisor.close()
    for child in children:
        kill_group(child)
        if child.log_file:
            child.log_file.close()


def test_the_back_off_doubles_up_to_its_cap():
    policy = RestartPolicy(backoff_first_s=1.0, backoff_max_s=30.0)
    assert [policy.delay_s(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_exits_are_named_by_code_or_signal():
    assert describe_exit(-9) == "signal 9 (SIGKILL)" and describe_exit(3) == "exit code 3"


def test_a_killed_child_is_restarted_and_recorded(tmp_path, redis_url, redis_client):
    child = _child(tmp_path, "sleeper", "import time; time.sleep(60)")
    supervisor = _supervise([child], redis_url)
    try:
        first = child.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: child.running() and child.pid != first, 10, what="the restart")
        records = wait_for(lambda: [r for r in read_children(redis_client, KEYS, "node0")
                                    if r["restarts"] == 1 and r["state"] == "running"], 10,
                           what="the record of the restart")
        assert records[0]["pid"] == child.pid and records[0]["last_exit"] == "signal 9 (SIGKILL)"
        kinds = wait_for(lambda: (k := _kinds(redis_client)) and "node.child_restarted" in k and k, 10)
        assert kinds.index("node.child_died") < kinds.index("node.child_restarted")
        died = next(e for e in events.read_since(redis_client, KEYS) if e.kind == "node.child_died")
        assert died.data["child"] == "sleeper" and died.data["pid"] == first
        assert died.data["exit"] == "signal 9 (SIGKILL)"
    finally:
        _stop(supervisor, [child])


def test_a_child_that_keeps_dying_is_given_up_after_the_limit(tmp_path, redis_url, redis_client):
    child = _child(tmp_path, "crasher", "import sys; sys.exit(3)")
    supervisor = _supervise([child], redis_url)
    try:
        wait_for(lambda: supervisor.states["crasher"].state == "gave_up", 20, what="giving up")
        record = wait_for(lambda: read_children(redis_client, KEYS, "node0"), 5)[0]
        assert record["state"] == "gave_up" and record["restarts"] == FAST.max_restarts
        assert record["last_exit"] == "exit code 3" and record["pid"] is None
        kinds = wait_for(lambda: (k := _kinds(redis_client)) and "node.child_gave_up" in k and k, 5)
        assert kinds.count("node.child_restarted") == FAST.max_restarts
        assert kinds.count("node.child_died") == FAST.max_restarts
        assert child.exit_code() == 3 and not child.running()  # left dead
    finally:
        _stop(supervisor, [child])


def test_restarts_go_on_while_redis_is_down_and_are_recorded_once_it_is_back(tmp_path):
    with RestartableRedis(tmp_path / "redis") as server:
        child = _child(tmp_path, "sleeper", "import time; time.sleep(60)")
        supervisor = _supervise([child], server.url)
        try:
            client = connect(server.url)
            wait_for(lambda: read_children(client, KEYS, "node0"), 5, what="the first record")
            server.stop()
            first = child.pid
            assert first is not None
            os.kill(first, signal.SIGKILL)
            wait_for(lambda: child.running() and child.pid != first, 10, what="a restart without Redis")
            server.start()
            record = wait_for(lambda: [r for r in read_children(client, KEYS, "node0")
                                       if r["restarts"] == 1], 15, what="the record after Redis came back")
            assert record[0]["pid"] == child.pid
            wait_for(lambda: "node.child_restarted" in _kinds(client), 10, what="the pending events")
            client.close()
        finally:
            _stop(supervisor, [child])


def test_what_a_dead_child_forked_is_killed_so_the_restart_can_bind_its_port(tmp_path, redis_url):
    port = free_port()
    # Binds the port in a forked process (as a worker's helper would) and keeps running; a
    # second copy that cannot bind exits with code 98.
    code = (f"import os, socket, sys, time\ns = socket.socket()\n"
            f"try:\n    s.bind(('127.0.0.1', {port}))\nexcept OSError:\n    sys.exit(98)\n"
            "s.listen()\nif os.fork() == 0:\n    time.sleep(60)\n"
            "s.close()\ntime.sleep(60)\n")
    child = _child(tmp_path, "forker", code)
    supervisor = _supervise([child], redis_url)
    try:
        first = child.pid
        assert first is not None
        wait_for(lambda: _taken(port), 10, what="the fork to listen")
        os.kill(first, signal.SIGKILL)  # the child alone, as the OOM killer does
        wait_for(lambda: supervisor.states["forker"].restarts == 1 and child.running(), 10)
        wait_for(lambda: _taken(port), 10, what="the restarted child to listen")
        assert supervisor.states["forker"].state == "running" and child.exit_code() is None
    finally:
        _stop(supervisor, [child])


def _taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.integration
def test_a_supervised_node_restarts_a_killed_worker_and_shows_it(tmp_path, redis_url):
    settings = make_settings(tmp_path, redis_url)
    with Node(settings, supervise=True) as node, httpx.Client(base_url=node.coordinator_url,
                                                               timeout=10) as http:
        worker = node.child("worker-worldmodel")
        first = worker.pid
        assert first is not None
        node.kill("worker-worldmodel")  # its whole process group, as a container dying
        wait_for(lambda: worker.running() and worker.pid != first, 20, what="the worker's restart")
        assert worker.ready_url is not None
        wait_for(lambda: _ok(worker.ready_url), 30, what="the restarted worker's metrics port")
        kinds = wait_for(lambda: (k := [e["kind"] for e in http.get("/v1/events").json()])
                         and "node.child_restarted" in k and k, 10, what="the events")
        assert "node.child_died" in kinds
        metrics = http.get("/metrics").text
        assert 'ptzjepa_child_restarts{child="worker-worldmodel",node="node0"} 1.0' in metrics
        assert 'ptzjepa_child_up{child="worker-worldmodel",node="node0"} 1.0' in metrics
        shown = {c["name"]: c for c in http.get("/v1/status").json()["nodes"][0]["children"]}
        assert shown["worker-worldmodel"]["restarts"] == 1
        assert shown["worker-worldmodel"]["state"] == "running"
        assert shown["worker-worldmodel"]["last_exit"] == "signal 9 (SIGKILL)"
        assert shown["coordinator"]["restarts"] == 0
        assert 'id="children"' in http.get("/").text
    client = connect(redis_url)
    assert {r["state"] for r in read_children(client, Keys("test"), "node0")} == {"stopped"}
    client.close()


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
