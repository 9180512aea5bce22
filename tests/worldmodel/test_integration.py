"""Collection then world-model training through real rq workers, a real Redis and the coordinator."""

import httpx
import pytest

from services.coordinator.launcher import Node
from shared import versions
from shared.store import Store
from tests.support.servers import wait_for
from tests.support.settings import make_settings
from tests.worldmodel.test_jobs import TINY

pytestmark = pytest.mark.integration


def _finish(http, job_id):
    def done():
        view = http.get(f"/v1/jobs/{job_id}").json()
        return view if view["status"] in ("finished", "failed", "stopped", "canceled") else None
    return wait_for(done, 240, interval_s=0.3, what=f"job {job_id}")


def test_collect_then_train_through_workers(tmp_path):
    settings = make_settings(tmp_path, worldmodel=TINY, camera={"sim": {"width": 48, "height": 48}})
    with Node(settings) as node, httpx.Client(base_url=node.coordinator_url, timeout=10) as http:
        collect = _finish(http, http.post("/v1/phases/collect",
                                          json={"iterations": 2, "movements": 4}).json()["job_id"])
        assert collect["status"] == "finished", collect
        job_id = http.post("/v1/phases/worldmodel", json={}).json()["job_id"]
        view = _finish(http, job_id)
        assert view["status"] == "finished", view
        result = view["result"]
        assert view["progress"]["phase"] == "worldmodel" and view["progress"]["done"] >= 1
        kinds = [e["kind"] for e in http.get("/v1/events").json()]
        assert "model.published" in kinds
    store = Store(settings.resolved_store_url())
    meta = versions.read_meta(store, result["slot"], result["version"])
    assert meta["frames_used"] == 20 and meta["node"] == "node0"
