"""SimCamera: pose state, simulated clock, snapshots, fault injection and thread safety."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from services.camera.sim import SimCamera, SimCameraConfig, SimClock, SimFault, SimWorld
from shared.pose import Pose


def test_starts_home_and_moves_wrap_and_clamp(small_world: SimWorld) -> None:
    cam = SimCamera(small_world)
    assert cam.position() == Pose(180.0, 0.0, 1.0)
    assert cam.move_absolute(Pose(370.0, 100.0, 30.0)) == Pose(10.0, 90.0, 20.0)
    assert cam.position() == Pose(10.0, 90.0, 20.0)
    cam.home()
    p = cam.move_relative(-190.0, 5.0, 2.5)  # zoom delta is additive, in magnification units
    assert p.pan == pytest.approx(350.0) and p.tilt == 5.0 and p.zoom == pytest.approx(3.5)
    assert cam.move_relative(0.0, -100.0, -10.0) == Pose(p.pan, -20.0, 1.0)


def test_clock_advances_with_moves_and_snapshots(small_world: SimWorld) -> None:
    cfg = SimCameraConfig(settle_base_s=0.5, settle_per_deg_s=0.01, settle_per_zoom_s=0.02, snapshot_s=0.04)
    cam = SimCamera(small_world, cfg)
    assert cam.now() == 0.0
    cam.move_absolute(Pose(270.0, 0.0, 1.0))  # 90 degrees of pan
    assert cam.now() == pytest.approx(0.5 + 0.9)
    t_before = cam.now()
    cam.move_absolute(Pose(300.0, 10.0, 3.0))  # 30 deg pan, 10 deg tilt at once, +2 zoom
    assert cam.now() - t_before == pytest.approx(0.5 + 0.3 + 0.04)
    _, _, t1 = cam.snapshot(32, 32)
    _, _, t2 = cam.snapshot(32, 32)
    assert t1 == pytest.approx(t_before + 0.84) and t2 == pytest.approx(t1 + 0.04)
    # the shortest way round: 350 -> 10 is 20 degrees, not 340
    assert cam.settle_time(Pose(350.0, 0.0, 1.0), Pose(10.0, 0.0, 1.0)) == pytest.approx(0.7)


def test_snapshot_is_the_world_view_at_the_capture_time(small_world: SimWorld) -> None:
    cam = SimCamera(small_world, clock=SimClock(12.0))
    cam.move_absolute(small_world.zone_poses(6.0)["road"])
    image, pose, t = cam.snapshot(64, 48)
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    assert pose == cam.position()
    assert np.array_equal(image, small_world.render(pose, t, 64, 48))
    jpeg, _, _ = cam.snapshot_jpeg(64, 48)
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape == (48, 64, 3)


def test_clock_rejects_going_back() -> None:
    clock = SimClock(1.0)
    assert clock.advance(0.5) == 1.5
    with pytest.raises(ValueError):
        clock.advance(-1.0)


def test_error_body_fault_leaves_pose_unchanged(small_world: SimWorld) -> None:
    cam = SimCamera(small_world, SimCameraConfig(fault_rate=1.0, fault_kinds=("error_body",)))
    with pytest.raises(SimFault) as err:
        cam.move_absolute(Pose(10.0, 0.0, 1.0))
    assert err.value.kind == "error_body" and b"try again" in err.value.payload
    assert cam.fault_counts["error_body"] == 1


def test_garbage_image_fault_only_hits_snapshots(small_world: SimWorld) -> None:
    cam = SimCamera(small_world, SimCameraConfig(fault_rate=1.0, fault_kinds=("garbage_image",)))
    cam.move_absolute(Pose(10.0, 0.0, 1.0))  # moves cannot return a garbage image
    assert cam.position() == Pose(10.0, 0.0, 1.0)
    with pytest.raises(SimFault) as err:
        cam.snapshot(32, 32)
    assert err.value.kind == "garbage_image"
    assert cv2.imdecode(np.frombuffer(err.value.payload, np.uint8), cv2.IMREAD_COLOR) is None


def test_timeout_fault_sleeps_then_raises(small_world: SimWorld) -> None:
    cam = SimCamera(small_world, SimCameraConfig(fault_rate=1.0, fault_kinds=("timeout",),
                                                 fault_timeout_s=0.05))
    start = time.perf_counter()
    with pytest.raises(SimFault, match="timeout"):
        cam.snapshot(16, 16)
    assert time.perf_counter() - start >= 0.045


def test_fault_sequence_is_seeded(small_world: SimWorld) -> None:
    def run(seed: int) -> list[str]:
        config = SimCameraConfig(fault_rate=0.3, fault_kinds=("error_body", "garbage_image"),
                                 fault_seed=seed)
        cam = SimCamera(small_world, config)
        out = []
        for _ in range(60):
            try:
                cam.snapshot(8, 8)
                out.append("ok")
            except SimFault as e:
                out.append(e.kind)
        return out

    a = run(1)
    assert a == run(1)
    assert 5 <= sum(k != "ok" for k in a) <= 35
    assert {"error_body", "garbage_image"} <= set(a)


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        SimCameraConfig(fault_kinds=("meteor",))
    with pytest.raises(ValueError):
        SimCameraConfig(fault_rate=1.5)
    with pytest.raises(ValueError):
        SimCameraConfig(settle_base_s=-1.0)


def test_rejects_non_finite_moves(small_world: SimWorld) -> None:
    cam = SimCamera(small_world)
    with pytest.raises(ValueError):
        cam.move_absolute(Pose(float("nan"), 0.0, 1.0))
    with pytest.raises(ValueError):
        cam.move_relative(0.0, float("inf"), 0.0)
    assert cam.position() == Pose(180.0, 0.0, 1.0)


def test_move_latency_is_wall_clock(small_world: SimWorld) -> None:
    cam = SimCamera(small_world, SimCameraConfig(move_latency_s=0.03))
    start = time.perf_counter()
    cam.move_relative(1.0, 0.0, 0.0)
    assert time.perf_counter() - start >= 0.025


def test_concurrent_moves_are_serialised(small_world: SimWorld) -> None:
    cfg = SimCameraConfig(settle_base_s=0.5, settle_per_deg_s=0.01)
    cam = SimCamera(small_world, cfg)

    def worker() -> None:
        for _ in range(50):
            cam.move_relative(1.0, 0.0, 0.0)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert cam.position().pan == pytest.approx((180.0 + 200.0) % 360.0)
    assert cam.now() == pytest.approx(200 * 0.51)
