"""Several sites sharing Redis, the store and the world-model slots, through real workers."""

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from services.coordinator.launcher import Launcher
from shared import versions
from shared.keys import Keys
from shared.leases import LeaseManager
from shared.redis import client_for
from shared.store import Store
from tests.coordinator.test_full_cycle import TINY
from tests.support.servers import wait_for
from tests.support.settings import make_settings

pytestmark = pytest.mark.integration


def _sites(tmp_path, n: int):
    sites = []
    for i in range(n):
        config = json.loads(json.dumps(TINY))
        config["worldmodel"].update({"slots": 2, "lease_wait_s": 3.0})
        s = make_settings(tmp_path, **config, collect={"iterations": 2, "movements": 4})
        sites.append(s.model_copy(update={"node": f"site{i}", "camera": s.camera.model_copy(
            update={"sim": s.camera.sim.model_copy(update={"seed": i})})}))
    return sites


def _run_cycles(url: str, count: int) -> list[dict]:
    views = []
    with httpx.Client(base_url=url, timeout=10) as http:
        for _ in range(count):
            cycle_id = http.post("/v1/cycles").json()["id"]

            def ended(cycle_id: str = cycle_id) -> dict | bool:
                view = http.get(f"/v1/cycles/{cycle_id}").json()
                return view["status"] != "running" and view

            views.append(wait_for(ended, 400, interval_s=0.5, what=f"cycle {cycle_id}"))
    return views


def test_three_sites_two_slots_two_cycles_each(tmp_path):
    sites = _sites(tmp_path, 3)
    with Launcher(sites) as cluster:
        urls = [cluster.coordinator_url_of(s) for s in cluster.sites]
        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(lambda u: _run_cycles(u, 2), urls))
        client = client_for(cluster.sites[0])
        leases = LeaseManager(client, Keys("test"), "checker")
        store = Store(sites[0].resolved_store_url())
        trained = {}
        for views in results:
            for view in views:
                assert view["status"] == "finished", json.dumps(view, indent=1)[:2000]
                wm = next(p for p in view["phases"] if p["name"] == "worldmodel")["result"]
                if not wm.get("skipped"):
                    trained.setdefault(wm["slot"], []).append(wm["version"])
        assert sum(len(v) for v in trained.values()) >= 4  # most phases found a free slot
        for slot in ("wm_00", "wm_01"):
            latest = leases.latest(slot)
            chain = versions.history(store, slot, latest["version"])
            # one linear history: every version trained on a slot is in it exactly once, in order
            assert sorted(m["version"] for m in chain) == sorted(trained.get(slot, []))
            fences = [m["fence"] for m in chain]
            assert fences == sorted(fences, reverse=True) and len(set(fences)) == len(fences)
            assert chain[-1]["parent"] is None
        nodes = {m["node"] for slot in ("wm_00", "wm_01")
                 for m in versions.history(store, slot, leases.latest(slot)["version"])}
        assert len(nodes) >= 2  # the slots learned from several sites
        with httpx.Client(base_url=urls[0], timeout=10) as http:
            history = http.get("/v1/models/wm_00/history").json()
            assert [h["version"] for h in history["versions"]] == [
                m["version"] for m in versions.history(store, "wm_00", leases.latest("wm_00")["version"])]
