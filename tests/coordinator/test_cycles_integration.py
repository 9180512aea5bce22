"""Cycles and lifelong mode through real workers: failures, stop requests and back-off."""

import httpx
import pytest

from services.coordinator.launcher import Node
from tests.support.servers import wait_for
from tests.support.settings import make_settings

pytestmark = pytest.mark.integration


def _kill_camera(node: Node) -> None:
    camera = next(c for c in node.children if c.name == "camera")
    camera.proc.terminate()
    camera.proc.wait(10)


def _wait_cycle(http, cycle_id, statuses=("finished", "failed", "stopped"), timeout_s=120):
    def ended():
        view = http.get(f"/v1/cycles/{cycle_id}").json()
        return view if view["status"] in statuses else None
    return wait_for(ended, timeout_s, interval_s=0.2, what=f"cycle {cycle_id}")


def test_a_failing_phase_fails_its_cycle_with_the_reason_and_cancels_the_rest(tmp_path):
    settings = make_settings(tmp_path)
    with Node(settings) as node, httpx.Client(base_url=node.coordinator_url, timeout=10) as http:
        _kill_camera(node)
        cycle = http.post("/v1/cycles", json={"collect": {"iterations": 1, "movements": 1}}).json()
        assert [p["name"] for p in cycle["phases"]] == ["collect", "worldmodel", "dreamer", "agent"]
        view = _wait_cycle(http, cycle["id"])
        assert view["status"] == "failed"
        assert view["reason"].startswith("collect failed: CameraServiceError")
        # a dead camera is a transient failure: the phase was retried once before failing for good
        kinds = [e["kind"] for e in http.get("/v1/events").json()]
        assert kinds.count("phase.retrying") == 1
        statuses = {p["name"]: p["status"] for p in view["phases"]}
        assert statuses["collect"] == "failed" and "error" in view["phases"][0]
        assert {statuses[n] for n in ("worldmodel", "dreamer", "agent")} == {"canceled"}
        assert http.get("/v1/cycles").json()[0]["id"] == cycle["id"]
        kinds = [e["kind"] for e in http.get("/v1/events").json()]
        assert "cycle.started" in kinds and "cycle.finished" in kinds


def test_stopping_a_cycle_stops_its_running_phase_and_cancels_the_rest(tmp_path):
    settings = make_settings(tmp_path, camera={"sim": {"move_latency_s": 0.05}})
    with Node(settings) as node, httpx.Client(base_url=node.coordinator_url, timeout=10) as http:
        cycle = http.post("/v1/cycles", json={"collect": {"iterations": 50, "movements": 20}}).json()
        wait_for(lambda: (http.get(f"/v1/cycles/{cycle['id']}").json()["phases"][0].get("progress")
                          or {}).get("done", 0) >= 2, 60, what="collection to start")
        assert http.post(f"/v1/cycles/{cycle['id']}/stop").status_code == 202
        view = _wait_cycle(http, cycle["id"])
        assert view["status"] == "stopped"

        def collect_ended():
            phases = http.get(f"/v1/cycles/{cycle['id']}").json()["phases"]
            return phases if phases[0]["status"] == "finished" else None
        phases = wait_for(collect_ended, 60, what="the collection to stop")
        assert phases[0]["result"]["stopped"] is True
        assert {p["status"] for p in phases[1:]} == {"canceled"}


def test_lifelong_mode_backs_off_after_failures_and_stops_on_request(tmp_path):
    settings = make_settings(tmp_path, cycles={"backoff_s": 0.5, "max_backoff_s": 1.0},
                             services={"job_retries": 0})
    with Node(settings) as node, httpx.Client(base_url=node.coordinator_url, timeout=10) as http:
        _kill_camera(node)
        state = http.post("/v1/lifelong/start").json()
        assert state["enabled"] and state["cycles_started"] == 1
        # each cycle fails at once (no camera); the back-off restarts the loop until we stop it
        wait_for(lambda: http.get("/v1/lifelong").json()["cycles_started"] >= 3, 60,
                 what="lifelong restarts after failures")
        assert http.get("/v1/lifelong").json()["consecutive_failures"] >= 2
        stopped = http.post("/v1/lifelong/stop", json={"now": True}).json()
        assert stopped["enabled"] is False
        count = stopped["cycles_started"]
        import time
        time.sleep(3)  # longer than the largest back-off: nothing new may start
        assert http.get("/v1/lifelong").json()["cycles_started"] == count
        assert all(c["status"] != "running" for c in http.get("/v1/cycles").json())


def test_cycle_requests_are_validated(tmp_path):
    settings = make_settings(tmp_path, api_token="tok")
    with Node(settings) as node, httpx.Client(base_url=node.coordinator_url, timeout=10) as http:
        assert http.post("/v1/cycles", json={}).status_code == 401
        auth = {"Authorization": "Bearer tok"}
        r = http.post("/v1/cycles", json={"worldmodel": {"slot": "nope"}}, headers=auth)
        assert r.status_code == 422 and "unknown slot" in r.json()["detail"]
        r = http.post("/v1/cycles", json={"collect": {"iterations": 0}}, headers=auth)
        assert r.status_code == 422 and "collect.iterations" in r.json()["detail"]
        assert http.post("/v1/cycles", json={"turbo": 1}, headers=auth).status_code == 422
        assert http.get("/v1/cycles/nope").status_code == 404
        assert http.get("/v1/cycles/bad%20id").status_code == 422
        assert http.post("/v1/lifelong/start").status_code == 401
        assert http.get("/v1/cycles").json() == []
