"""A collection sweep and an agent navigation through each emulated camera, from the coordinator
API, end to end: real workers, a real Redis, the camera service with the real driver speaking
SUNAPI / VAPIX / ONVIF over HTTP to the emulator."""

from __future__ import annotations

import json

import httpx
import pytest

from services.coordinator.launcher import Node
from shared.store import Store
from tests.camera.drivers.test_service import camera_settings
from tests.coordinator.test_full_cycle import TINY
from tests.support.servers import wait_for
from tests.support.settings import make_settings

pytestmark = pytest.mark.integration


def _finished(http: httpx.Client, path: str, timeout_s: float = 240) -> dict:
    done = ("finished", "failed", "stopped", "canceled")
    view = wait_for(lambda: (v := http.get(path).json())["status"] in done and v, timeout_s, 0.3, path)
    assert view["status"] == "finished", json.dumps(view, indent=1)[:2000]
    return view


@pytest.mark.parametrize("protocol", ["hanwha", "axis", "onvif"])
def test_sweep_then_navigation_through_an_emulated_camera(protocol, tmp_path, emulators):
    emulators[protocol].reset()
    config = json.loads(json.dumps(TINY))
    config["camera"] = camera_settings(protocol, emulators)
    settings = make_settings(tmp_path, **config, collect={"iterations": 2, "movements": 3})
    with Node(settings) as node, httpx.Client(base_url=node.coordinator_url, timeout=10) as http:
        cycle = http.post("/v1/cycles").json()
        assert cycle["phases"][0]["name"] == "collect"
        view = _finished(http, f"/v1/cycles/{cycle['id']}")
        assert view["phases"][0]["result"]["frames"] == 16  # with hold frames
        job_id = http.post("/v1/phases/navigate", json={"iterations": 2, "movements": 3}).json()["job_id"]
        job = _finished(http, f"/v1/jobs/{job_id}")
        nav = job["result"]
        assert job["progress"]["done"] == job["progress"]["total"] == 16  # hold frames counted
        metrics = httpx.get(f"{node.camera_url}/metrics").text
    assert nav["frames"] == 16 and nav["rounds"] == 2
    assert f'driver="{protocol}",op="snapshot",outcome="ok"' in metrics
    store = Store(settings.resolved_store_url())
    records = [r for m in nav["manifests"] for r in store.read_manifest(m)]
    assert all(r.source == "navigate" for r in records)
    assert all(store.read_image(r.path).shape == (96, 96, 3) for r in records)
