"""collect_sweep run inline (no rq worker) against a real camera service and a real Redis."""

import pytest

from services.camera.app import create_app
from services.camera.jobs import collect_sweep
from services.camera.sweep import run_sweep
from shared import events
from shared.camera_client import CameraClient
from shared.config import child_environment
from shared.keys import Keys
from shared.redis import connect
from shared.scene import ZONE_KINDS
from shared.store import Store
from tests.support.servers import ThreadedServer
from tests.support.settings import make_settings


@pytest.fixture
def node(tmp_path, redis_url, monkeypatch):
    settings = make_settings(tmp_path, redis_url)
    for key, value in child_environment(settings, tmp_path / "run").items():
        if key.startswith("PTZJEPA_"):
            monkeypatch.setenv(key, value)
    with ThreadedServer(create_app(settings), port=settings.services.camera_port):
        yield settings


def test_sweep_writes_frames_manifests_and_a_contact_sheet(node):
    result = collect_sweep(iterations=2, movements=3, seed=5)
    store = Store(node.resolved_store_url())
    # 2 rounds of 4 views, each grabbed again after a no-op move (hold frames, the default)
    assert result["frames"] == 16 and result["rounds"] == 2 and not result["stopped"]
    assert len(store.list("frames/node0", ".jpg")) == 16
    records = [r for m in result["manifests"] for r in store.read_manifest(m)]
    assert [r.step for r in records] == list(range(8)) * 2
    assert records[0].action is None and all(r.action is not None for r in records[1:8])
    views, holds = records[0::2], records[1::2]
    assert not any(r.extra.get("hold") for r in views)
    assert all(h.extra["hold"] and h.action == 0 and h.pose == v.pose
               for v, h in zip(views, holds, strict=True))
    assert all(h.sim_time > v.sim_time for v, h in zip(views, holds, strict=True))  # a move's time later
    assert all(r.source == "sweep" and r.node == "node0" for r in records)
    # the simulator's ground truth per view travels through the HTTP camera service
    assert all(r.kind_fractions is not None and sum(r.kind_fractions.values()) == pytest.approx(1.0)
               for r in records)
    assert set(result["mean_kind_fractions"]) == set(ZONE_KINDS)
    ranges = node.camera.ranges()
    assert all(ranges.check(r.pose.to_pose()) == [] for r in records)
    for r in records:
        assert store.read_image(r.path).shape == (96, 96, 3)
    assert store.read_image(result["contact_sheet"]).shape[2] == 3
    kinds = [e.kind for e in events.read_since(connect(node.redis_url), Keys("test"))]
    assert kinds == ["phase.started", "phase.finished"]


def test_a_sweep_without_hold_frames_grabs_each_view_once(node, tmp_path):
    store = Store(node.resolved_store_url())
    with CameraClient(node.services.camera_base_url()) as camera:
        result = run_sweep(camera, store, node="node0", camera="cam0", iterations=1, movements=3,
                           seed=5, hold_frames=False)
    records = store.read_manifest(result.manifests[0])
    assert result.frames == 4 and [r.step for r in records] == [0, 1, 2, 3]
    assert not any(r.extra.get("hold") for r in records)


def test_same_seed_same_poses(node):
    a = collect_sweep(iterations=1, movements=4, seed=9)
    b = collect_sweep(iterations=1, movements=4, seed=9)
    store = Store(node.resolved_store_url())
    poses = [[r.pose for r in store.read_manifest(m)] for m in (a["manifests"][0], b["manifests"][0])]
    assert poses[0] == poses[1]


def test_camera_down_fails_clearly_and_keeps_nothing_half_written(tmp_path, redis_url, monkeypatch):
    settings = make_settings(tmp_path, redis_url)  # no camera server started
    for key, value in child_environment(settings, tmp_path / "run").items():
        if key.startswith("PTZJEPA_"):
            monkeypatch.setenv(key, value)
    from shared.camera_client import CameraServiceError
    with pytest.raises(CameraServiceError, match="GET /v1/info failed after"):
        collect_sweep(iterations=1, movements=1, seed=1)
