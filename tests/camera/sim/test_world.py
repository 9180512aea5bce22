"""Rendering geometry, determinism, dynamics and ground-truth zones of SimWorld."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from services.camera.sim import DynamicsConfig, SimWorld, SimWorldConfig
from shared.pose import Pose

from .conftest import SMALL


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    return float(np.corrcoef(a, b)[0, 1])


def test_render_shape_dtype_and_determinism(small_world: SimWorld) -> None:
    other = SimWorld(SMALL)  # a separate world from the same config
    for pose, t in ((Pose(12.5, 3.0, 1.0), 0.0), (Pose(200.0, -15.0, 7.3), 123.456)):
        a = small_world.render(pose, t, 160, 120)
        assert a.shape == (120, 160, 3) and a.dtype == np.uint8
        assert np.array_equal(a, small_world.render(pose, t, 160, 120))
        assert np.array_equal(a, other.render(pose, t, 160, 120))


def test_pan_wraps(small_world: SimWorld) -> None:
    w = small_world
    assert np.array_equal(w.render(Pose(0.0, 0.0, 1.0), 0.0), w.render(Pose(360.0, 0.0, 1.0), 0.0))
    assert np.array_equal(w.render(Pose(-10.0, 5.0, 2.0), 0.0), w.render(Pose(350.0, 5.0, 2.0), 0.0))
    a, b = w.render(Pose(359.0, 0.0, 1.0), 0.0), w.render(Pose(1.0, 0.0, 1.0), 0.0)
    far = w.render(Pose(180.0, 0.0, 1.0), 0.0)
    assert _corr(a, b) > 0.9 > _corr(a, far)
    # 2 degrees of pan at 60 deg hfov over 224 px is ~7.5 px: shifting b right re-aligns it with a
    shift = 224 / 60 * 2
    m = np.float32([[1, 0, shift], [0, 1, 0]])
    b_shifted = cv2.warpAffine(b, m, (224, 224))
    assert _corr(a[60:164, 40:184], b_shifted[60:164, 40:184]) > 0.95


def test_no_seam_at_pan_zero(small_world: SimWorld) -> None:
    view = small_world.render(Pose(0.0, -2.0, 4.0), 0.0, static=True).astype(np.float32)
    col_diff = np.abs(np.diff(view, axis=1)).mean(axis=(0, 2))  # between neighbouring columns
    centre = col_diff[110:113].max()  # the seam (yaw 0) falls on the centre columns
    assert centre <= 3.0 * np.median(col_diff) + 1.0


def test_tilt_and_zoom_are_clamped(small_world: SimWorld) -> None:
    w = small_world
    pairs = [(Pose(30.0, 120.0, 1.0), Pose(30.0, 90.0, 1.0)),
             (Pose(30.0, -50.0, 1.0), Pose(30.0, -20.0, 1.0)),
             (Pose(30.0, 0.0, 0.2), Pose(30.0, 0.0, 1.0)),
             (Pose(30.0, 0.0, 55.0), Pose(30.0, 0.0, 20.0))]
    for raw, clamped in pairs:
        assert np.array_equal(w.render(raw, 0.0, 64, 64), w.render(clamped, 0.0, 64, 64))


def test_horizon_is_level_and_up_is_up(small_world: SimWorld) -> None:
    # Facing the lake (no buildings): sky above the middle row, ground below it.
    pan = small_world.layout.lake.centre[0]
    view = small_world.render(Pose(pan, 0.0, 1.0), 0.0, static=True).astype(np.float32)
    top, bottom = view[:40].reshape(-1, 3).mean(0), view[-40:].reshape(-1, 3).mean(0)
    assert top[2] > top[0] + 30  # blue sky
    assert bottom[1] > bottom[2] + 20  # green ground
    # looking up shows only sky, looking down shows no sky
    up = small_world.render(Pose(pan, 90.0, 1.0), 0.0, static=True).reshape(-1, 3).mean(0)
    assert up[2] > up[0]


def test_zoom_is_a_magnified_centre_crop(small_world: SimWorld) -> None:
    pose = Pose(small_world.layout.sign.centre[0] - 5.0, 3.0, 1.0)
    wide = small_world.render(pose, 0.0, 224, 224, static=True)
    zoomed = small_world.render(Pose(pose.pan, pose.tilt, 4.0), 0.0, 224, 224, static=True)
    # hfov = base / zoom, so the crop is tan(7.5 deg) / tan(30 deg) of the width (pinhole geometry)
    side = 224 * math.tan(math.radians(7.5)) / math.tan(math.radians(30.0))
    crop = cv2.resize(cv2.getRectSubPix(wide, (round(side), round(side)), (111.5, 111.5)), (224, 224),
                      interpolation=cv2.INTER_LINEAR)
    assert _corr(crop, zoomed) > 0.85
    off_centre = cv2.resize(wide[10:61, 10:61], (224, 224), interpolation=cv2.INTER_LINEAR)
    assert _corr(off_centre, zoomed) < 0.5
    assert small_world.hfov(4.0) == pytest.approx(15.0)


def test_dynamic_fraction_bounds_and_changes_on_the_road(small_world: SimWorld) -> None:
    road = small_world.zone_poses(zoom=6.0)["road"]
    assert small_world.dynamic_zone_fraction(road) > 0.9
    fracs = [small_world.dynamic_fraction(road, t) for t in np.arange(0.0, 20.0, 0.5)]
    assert all(0.0 <= f <= 1.0 for f in fracs)
    assert len({round(f, 4) for f in fracs}) > 5 and max(fracs) > 0.1
    a, b = small_world.render(road, 0.0), small_world.render(road, 1.0)
    assert np.abs(a.astype(int) - b.astype(int)).max() > 50  # cars moved


def test_every_zone_pose_is_mostly_dynamic_zone(small_world: SimWorld) -> None:
    kinds = small_world.zone_kinds()
    for name, pose in small_world.zone_poses(zoom=12.0).items():
        if kinds[name] == "detail":  # static fine structure: nothing there ever changes
            assert small_world.dynamic_zone_fraction(pose) == 0.0, name
        else:
            assert small_world.dynamic_zone_fraction(pose) > 0.5, name


def test_static_region_never_changes_except_light(small_world: SimWorld) -> None:
    pose = Pose(small_world.layout.road.centre[0], 60.0, 3.0)  # sky high above the road
    assert small_world.dynamic_zone_fraction(pose) == 0.0
    assert small_world.dynamic_fraction(pose, 17.0) == 0.0
    static = small_world.render(pose, 0.0, static=True)
    assert np.array_equal(small_world.render(pose, 0.0), static)  # t=0 is full daylight
    dusk = small_world.render(pose, small_world.config.dynamics.day_period_s / 2)
    assert dusk.mean() < 0.8 * static.mean()


def test_blinking_sign_toggles(small_world: SimWorld) -> None:
    cfg = small_world.config.dynamics
    sign = small_world.zone_poses(zoom=20.0)["sign"]
    t_on, t_off = 0.25 * cfg.blink_period_s, 0.75 * cfg.blink_period_s
    assert small_world.light_on(t_on) and not small_world.light_on(t_off)
    assert small_world.light_on(t_on + 10 * cfg.blink_period_s)
    assert small_world.dynamic_fraction(sign, t_on) > 0.9
    assert small_world.dynamic_fraction(sign, t_off) < 0.1  # only the chaser bulb is lit
    on, off = small_world.render(sign, t_on), small_world.render(sign, t_off)
    assert on.astype(float).mean() > off.astype(float).mean() + 20


def test_zone_across_the_seam() -> None:
    world = SimWorld(SMALL)
    lake = world.layout.lake
    assert (lake.yaw0 % 360) + lake.yaw_span > 360  # seed 0 puts the lake across yaw 0
    pitch = lake.centre[1]
    for pan in (359.5, 0.0, 0.5):
        assert world.dynamic_zone_fraction(Pose(pan, pitch, 20.0)) > 0.9


def test_random_poses_are_mostly_static(small_world: SimWorld) -> None:
    rng = np.random.default_rng(11)
    r = small_world.ranges
    zf = np.array([small_world.dynamic_zone_fraction(
        Pose(rng.uniform(0, 360), rng.uniform(r.tilt_min, r.tilt_max), rng.uniform(r.zoom_min, r.zoom_max)),
        32, 32) for _ in range(600)])
    share = float((zf > 0.5).mean())
    assert 0.04 <= share <= 0.16, share


def test_dynamics_can_be_disabled() -> None:
    world = SimWorld(SimWorldConfig(seed=0, pano_width=512, pano_height=256,
                                    dynamics=DynamicsConfig(enabled=False)))
    road = world.zone_poses(6.0)["road"]
    assert np.array_equal(world.render(road, 0.0), world.render(road, 321.0))
    assert world.dynamic_fraction(road, 5.0) == 0.0 and world.dynamic_zone_fraction(road) == 0.0


def test_mask_shapes_and_info(small_world: SimWorld) -> None:
    pose = small_world.zone_poses(3.0)["plaza"]
    assert small_world.dynamic_mask(pose, 1.0, 40, 30).shape == (30, 40)
    assert small_world.zone_mask(pose, 40, 30).dtype == bool
    info = small_world.info()
    assert info["seed"] == 0 and info["base_hfov_deg"] == 60.0
    assert info["panorama_size"] == [1024, 512]
    assert set(info["zones"]) == {"road", "plaza", "lake", "birds", "sign", "dial", "screen", "board"}
    assert info["zone_kinds"]["screen"] == "noise" and info["zone_kinds"]["board"] == "detail"
    assert info["ranges"]["tilt_max"] == 90.0


def test_rejects_bad_panorama_array() -> None:
    with pytest.raises(ValueError):
        SimWorld(SMALL, panorama=np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(ValueError):
        SimWorld(SMALL, panorama=np.zeros((100, 200), np.uint8))
