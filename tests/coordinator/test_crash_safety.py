"""A world-model worker killed mid-training, alone (as the OOM killer does) or with its process
group (as a dying container), then restarted: it binds its metrics port again and the cycle ends
within a bound instead of staying `running`."""

import json
import os
import signal
import time

import httpx
import pytest

from services.coordinator.launcher import Launcher
from shared.keys import Keys
from shared.redis import connect
from tests.coordinator.test_chaos import _get, _worldmodel_running
from tests.coordinator.test_full_cycle import TINY
from tests.support.redis_server import RestartableRedis
from tests.support.servers import wait_for
from tests.support.settings import make_settings

pytestmark = pytest.mark.integration

# From the kill to the cycle's end: the dead job's heartbeat expires (3 heartbeats of 1 s), the
# housekeeping finds it (2 more), the retry trains again (its 6 s budget) and the later phases run.
CYCLE_END_BOUND_S = 90.0


@pytest.mark.parametrize("how", ["process", "group"])
def test_a_killed_worldmodel_worker_comes_back_and_the_cycle_ends(tmp_path, how):
    config = json.loads(json.dumps(TINY))
    config["worldmodel"]["train"].update({"steps": 100_000, "epochs": 100_000, "time_budget_s": 6.0})
    config["worldmodel"].update({"lease_ttl_s": 3.0, "lease_wait_s": 20.0})
    with RestartableRedis(tmp_path / "redis") as server:
        settings = make_settings(tmp_path, server.url, **config,
                                 collect={"iterations": 2, "movements": 4},
                                 services={"job_retries": 3, "retry_intervals_s": [0]})
        client = connect(server.url)
        keys = Keys("test")
        with Launcher([settings]) as node, httpx.Client(base_url=node.coordinator_url, timeout=10) as http:
            cycle_id = http.post("/v1/cycles").json()["id"]
            wait_for(lambda: _worldmodel_running(client, keys), 120, interval_s=0.2,
                     what="world-model training to start")
            time.sleep(1.0)  # mid-training
            worker = node.child("worker-worldmodel")
            if how == "process":
                os.kill(worker.proc.pid, signal.SIGKILL)
                worker.proc.wait()
            else:
                node.kill("worker-worldmodel")
            killed_at = time.monotonic()
            node.restart("worker-worldmodel")
            assert worker.ready_url is not None
            wait_for(lambda: _metrics_answer(worker.ready_url), 30, interval_s=0.2,
                     what="the restarted worker's /metrics")
            view = wait_for(lambda: (v := _get(http, f"/v1/cycles/{cycle_id}"))["status"] != "running" and v,
                            CYCLE_END_BOUND_S, interval_s=0.5, what="the cycle to end")
            took = time.monotonic() - killed_at
            assert view["status"] in ("finished", "failed"), view
            if view["status"] == "failed":
                assert view["reason"]
            assert took < CYCLE_END_BOUND_S
            events = [e["kind"] for e in _get(http, "/v1/events?count=1000")]
            assert "phase.retrying" in events  # the killed job was retried, not lost


def _metrics_answer(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_clean_stop_during_world_model_training_ends_every_child_within_the_grace(tmp_path):
    config = json.loads(json.dumps(TINY))
    config["worldmodel"]["train"].update({"steps": 100_000, "epochs": 100_000, "time_budget_s": 60.0})
    with RestartableRedis(tmp_path / "redis") as server:
        settings = make_settings(tmp_path, server.url, **config,
                                 collect={"iterations": 2, "movements": 4})
        client = connect(server.url)
        node = Launcher([settings]).start()
        try:
            with httpx.Client(base_url=node.coordinator_url, timeout=10) as http:
                http.post("/v1/cycles")
                wait_for(lambda: _worldmodel_running(client, Keys("test")), 120, interval_s=0.2,
                         what="world-model training to start")
            time.sleep(1.0)
            procs = [c.proc for c in node.children if c.proc is not None]
        except BaseException:
            node.stop()
            raise
        started = time.monotonic()
        node.stop()
        took = time.monotonic() - started
        assert all(p.poll() is not None for p in procs)
        assert took < settings.services.stop_grace_s, f"stop took {took:.2f} s"
        # the stopped job released its lease in `finally`
        assert not _worldmodel_running(client, Keys("test"))
