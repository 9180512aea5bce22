"""Whole cycles with tiny models: the phases inline in order, then through real workers."""

import json

import httpx
import pytest

from services.agent.jobs import navigate, train_agent
from services.camera.app import create_app
from services.camera.jobs import collect_sweep
from services.coordinator.launcher import Node
from services.dreamer.jobs import generate_dreams
from services.worldmodel.jobs import train_world_model
from shared.config import child_environment
from shared.dreams import read_dreams
from shared.store import Store
from tests.support.servers import ThreadedServer, wait_for
from tests.support.settings import make_settings

TINY = {
    "worldmodel": {
        "model": {"encoder": {"img_size": 32, "patch_size": 8, "dim": 32, "depth": 1, "heads": 2},
                  "predictor": {"dim": 32, "depth": 1, "heads": 2}, "surprise": {"hidden": 16}},
        "train": {"epochs": 2, "window_len": 3, "windows_per_batch": 2, "rollout_horizon": 1},
        "lease_wait_s": 1.0},
    "dreamer": {"dreams": 12, "length": 4, "batch": 6, "shard_dreams": 5, "seed": 3},
    "agent": {"config": {"hidden": [32], "batch_size": 16, "replay_capacity": 1000, "updates": 30},
              "navigate_iterations": 2, "navigate_movements": 3},
    "camera": {"sim": {"width": 48, "height": 48}},
}


def test_phases_inline_share_one_state_space(tmp_path, redis_url, monkeypatch):
    settings = make_settings(tmp_path, redis_url, **json.loads(json.dumps(TINY)))
    for key, value in child_environment(settings, tmp_path / "run").items():
        if key.startswith("PTZJEPA_"):
            monkeypatch.setenv(key, value)
    store = Store(settings.resolved_store_url())
    with ThreadedServer(create_app(settings), port=settings.services.camera_port):
        collect_sweep(iterations=2, movements=4, seed=1)
        wm = train_world_model()
        dreams = generate_dreams(slot=wm["slot"])
        assert dreams["version"] == wm["version"] and dreams["dreams"] == 12 and dreams["shards"] == 3
        loaded = read_dreams(store, dreams["folder"])
        assert loaded.observations.shape[:2] == (12, 5)
        # the measured error map is fitted on the sweep's 2 x 9 real transitions (5 views and
        # their hold frames per round); too few holds for an atlas of holds alone
        assert dreams["error_map"]["transitions"] == 18
        assert dreams["error_map"]["atlas_source"] == "in_place"
        assert loaded.measured_move.shape == (12, 4) and loaded.measured_view.shape == (12, 5)
        agent = train_agent()
        assert agent["wm_version"] == wm["version"] and agent["updates"] == 30
        nav = navigate(iterations=2, movements=3, seed=4)
        monkeypatch.setenv("PTZJEPA_AGENT__HOLD_FRAMES", "false")
        once = navigate(iterations=1, movements=2, seed=5)  # each view grabbed once
    assert once["frames"] == 3 and sum(once["action_histogram"]) == 2
    assert nav["frames"] == 16 and nav["rounds"] == 2 and len(nav["action_histogram"]) == 21
    assert sum(nav["action_histogram"]) == 6  # the agent's moves; hold frames are not its moves
    records = [r for m in nav["manifests"] for r in store.read_manifest(m)]
    assert all(r.source == "navigate" for r in records)
    holds = [r for r in records if r.extra.get("hold")]
    moves = [r for r in records if r.action is not None and not r.extra.get("hold")]
    assert len(moves) == 6 and len(holds) == 8
    # every view is grabbed again after a no-op move: a hold follows each frame of the agent's
    for before, hold in zip(records[::2], records[1::2], strict=True):
        assert hold.extra.get("hold") and hold.action == 0 and hold.pose == before.pose
        assert hold.extra["observed_error"] >= 0
    assert all(len(r.extra["q_values"]) == 21 and r.extra["observed_error"] >= 0 for r in moves)
    # the observation of a real frame has the dreams' size: one and the same space
    assert loaded.obs_dim == 5 * 32 + 4
    again = train_agent()
    assert again["continued"] is True


@pytest.mark.integration
def test_two_cycles_through_workers(tmp_path):
    settings = make_settings(tmp_path, **json.loads(json.dumps(TINY)),
                             collect={"iterations": 2, "movements": 4})
    with Node(settings) as node, httpx.Client(base_url=node.coordinator_url, timeout=10) as http:
        ids = []
        for expected_first in ("collect", "navigate"):
            cycle = http.post("/v1/cycles").json()
            assert cycle["phases"][0]["name"] == expected_first
            url = f"/v1/cycles/{cycle['id']}"
            view = wait_for(lambda url=url: (v := http.get(url).json())["status"] != "running" and v,
                            300, interval_s=0.5, what="the cycle")
            assert view["status"] == "finished", json.dumps(view, indent=1)[:3000]
            assert all(p["status"] == "finished" and p["seconds"] >= 0 for p in view["phases"])
            ids.append(cycle["id"])
        first, second = (http.get(f"/v1/cycles/{i}").json() for i in ids)
        results = {p["name"]: p["result"] for p in second["phases"]}
        # each phase used what the phase before it made
        assert results["dreamer"]["version"] == results["worldmodel"]["version"]
        assert results["agent"]["wm_version"] == results["worldmodel"]["version"]
        # the navigation of cycle 2 drove the camera with the agent of cycle 1
        assert results["navigate"]["frames"] == 2 * 4 * 2  # with hold frames
        # with two slots, the second cycle trained the slot the first left alone (least recent)
        assert results["worldmodel"]["slot"] != first["phases"][1]["result"]["slot"]
        kinds = [e["kind"] for e in http.get("/v1/events", params={"count": 1000}).json()]
        assert kinds.count("cycle.finished") == 2 and "agent.trained" in kinds
