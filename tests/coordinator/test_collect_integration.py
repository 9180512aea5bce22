"""The whole collection phase through `ptzjepa up`'s processes: embedded Redis, camera service,
a real rq worker and the coordinator, driven over REST exactly as a user would."""

import time

import httpx
import pytest

from services.coordinator.launcher import LaunchError, Node
from shared.store import Store
from tests.support.servers import wait_for
from tests.support.settings import make_settings

pytestmark = pytest.mark.integration


def _wait_job(http: httpx.Client, job_id: str, timeout_s: float = 120) -> dict:
    def done():
        view = http.get(f"/v1/jobs/{job_id}").json()
        return view if view["status"] in ("finished", "failed", "stopped", "canceled") else None
    return wait_for(done, timeout_s, interval_s=0.2, what=f"job {job_id}")


def test_collect_phase_end_to_end(tmp_path):
    settings = make_settings(tmp_path, api_token="tok")
    with Node(settings) as node:
        with httpx.Client(base_url=node.coordinator_url, timeout=10,
                          headers={"Authorization": "Bearer tok"}) as http:
            r = http.post("/v1/phases/collect", json={"iterations": 3, "movements": 4, "seed": 1})
            assert r.status_code == 202
            view = _wait_job(http, r.json()["job_id"])
            assert view["status"] == "finished", view
            assert view["progress"]["done"] == view["progress"]["total"] == 30  # 15 views, each held once
            result = view["result"]
            kinds = [e["kind"] for e in http.get("/v1/events").json()]
            assert kinds == ["phase.started", "phase.finished"]
        store = Store(settings.resolved_store_url())
        assert result["frames"] == 30 and len(result["manifests"]) == 3
        assert len(store.list("frames/node0", ".jpg")) == 30
        assert store.exists(result["contact_sheet"])
        metrics = httpx.get(f"{node.camera_url}/metrics").text
        snapshots = 'ptzjepa_camera_requests_total{camera="cam0",driver="sim",op="snapshot",outcome="ok"}'
        assert f"{snapshots} 30.0" in metrics
        worker_metrics = httpx.get(node.worker_metrics_urls()[0]).text
        assert 'ptzjepa_frames_collected_total{node="node0",source="sweep"} 30.0' in worker_metrics
    assert node.children == []  # everything stopped


def test_a_running_sweep_stops_on_request_and_keeps_its_frames(tmp_path):
    settings = make_settings(tmp_path, camera={"sim": {"move_latency_s": 0.05}})
    with Node(settings) as node, httpx.Client(base_url=node.coordinator_url, timeout=10) as http:
        job_id = http.post("/v1/phases/collect", json={"iterations": 50, "movements": 20}).json()["job_id"]
        wait_for(lambda: (http.get(f"/v1/jobs/{job_id}").json().get("progress") or {}).get("done", 0) >= 3,
                 60, what="some frames")
        assert http.post(f"/v1/jobs/{job_id}/stop").status_code == 202
        view = _wait_job(http, job_id)
        assert view["status"] == "finished" and view["result"]["stopped"] is True
        frames = view["result"]["frames"]
        assert 3 <= frames < 1050
        store = Store(settings.resolved_store_url())
        listed = sum(len(store.read_manifest(m)) for m in view["result"]["manifests"])
        assert listed == frames == len(store.list("frames/node0", ".jpg"))


def test_a_failing_job_reports_its_reason(tmp_path):
    # The camera service points at a port nothing listens on: the sweep must fail with a reason.
    settings = make_settings(tmp_path)
    with Node(settings) as node:
        node.settings  # noqa: B018 - started
        with httpx.Client(base_url=node.coordinator_url, timeout=10) as http:
            # stop the camera process so the worker's requests are refused
            camera = next(c for c in node.children if c.name == "camera")
            camera.proc.terminate()
            camera.proc.wait(10)
            job_id = http.post("/v1/phases/collect", json={"iterations": 1, "movements": 1}).json()["job_id"]
            view = _wait_job(http, job_id)
    assert view["status"] == "failed"
    assert "CameraServiceError" in view["error"] and "/v1/info" in view["error"]


def test_launch_failure_is_reported_with_the_log(tmp_path):
    settings = make_settings(tmp_path, camera={"driver": "hanwha"})
    start = time.monotonic()
    with pytest.raises(LaunchError, match="camera exited"):
        Node(settings, ready_timeout_s=30).start()
    assert time.monotonic() - start < 30
