"""Chaos (bounded in time, loopback only): world-model workers killed mid-training again and again,
and one Redis restart, while cycles run. Afterwards no slot is stuck, no published file is corrupt,
and every cycle finished or failed with a recorded reason."""

import hashlib
import json
import time

import httpx
import pytest

from services.coordinator.launcher import Launcher
from shared import versions
from shared.keys import Keys
from shared.leases import LeaseManager
from shared.redis import connect
from shared.store import Store
from tests.coordinator.test_full_cycle import TINY
from tests.support.redis_server import RestartableRedis
from tests.support.servers import wait_for
from tests.support.settings import make_settings

pytestmark = pytest.mark.integration


def _get(http: httpx.Client, path: str):
    """GET that rides out the seconds Redis is down."""
    for _ in range(100):
        try:
            r = http.get(path)
            if r.status_code < 500:
                return r.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{path} kept failing")


def _worldmodel_running(client, keys: Keys) -> bool:
    return any(LeaseManager(client, keys, "probe").holders(["wm_00", "wm_01"]).values())


def test_killed_workers_and_a_redis_restart(tmp_path):
    config = json.loads(json.dumps(TINY))
    # training long enough to be killed in the middle; short leases and heartbeats so the dead
    # are noticed within seconds; immediate retries
    config["worldmodel"]["train"].update({"steps": 100_000, "epochs": 100_000, "time_budget_s": 8.0})
    config["worldmodel"].update({"lease_ttl_s": 3.0, "lease_wait_s": 20.0})
    with RestartableRedis(tmp_path / "redis") as server:
        settings = make_settings(tmp_path, server.url, **config,
                                 collect={"iterations": 2, "movements": 4},
                                 services={"job_retries": 3, "retry_intervals_s": [0]})
        store = Store(settings.resolved_store_url())
        keys = Keys("test")
        with Launcher([settings]) as node, httpx.Client(base_url=node.coordinator_url, timeout=10) as http:
            client = connect(server.url)
            cycle_ids = []
            kills = 0
            restarted_redis = False
            deadline = time.monotonic() + 240
            for _ in range(3):
                cycle_ids.append(http.post("/v1/cycles").json()["id"])
                while time.monotonic() < deadline:
                    view = _get(http, f"/v1/cycles/{cycle_ids[-1]}")
                    if view["status"] != "running":
                        break
                    worker = node.child("worker-worldmodel")
                    if kills < 3 and worker.proc.poll() is None and _worldmodel_running(client, keys):
                        time.sleep(1.0)  # let it train a little, then kill it mid-training
                        node.kill("worker-worldmodel")  # SIGKILL, like a dying container
                        kills += 1
                        time.sleep(0.5)
                        node.restart("worker-worldmodel")
                    elif kills >= 1 and not restarted_redis:
                        server.stop()
                        time.sleep(1.0)
                        server.start()
                        restarted_redis = True
                    time.sleep(0.3)
            assert kills >= 2 and restarted_redis
            # every cycle ended, finished or failed with a reason
            views = [wait_for(lambda i=i: (v := _get(http, f"/v1/cycles/{i}"))["status"] != "running" and v,
                              120, interval_s=0.5, what=f"cycle {i}") for i in cycle_ids]
            for view in views:
                assert view["status"] in ("finished", "failed"), view
                if view["status"] == "failed":
                    assert view["reason"]
            assert any(v["status"] == "finished" for v in views)
            # no slot is stuck: every lease is free once the dead holders' TTLs ran out
            wait_for(lambda: not _worldmodel_running(client, keys), 20, what="slots to be free")
            # no published file is corrupt
            for slot in ("wm_00", "wm_01"):
                latest = LeaseManager(client, keys, "probe").latest(slot)
                if latest is None:
                    continue
                for meta in versions.history(store, slot, latest["version"]):
                    share = versions.read_share(store, slot, meta["version"])
                    assert hashlib.sha256(share).hexdigest() == meta["version"]
                    versions.read_resume(store, slot, meta["version"])  # hash-checked
            events = [e["kind"] for e in _get(http, "/v1/events?count=1000")]
            assert "phase.retrying" in events  # the killed jobs were retried, not lost
