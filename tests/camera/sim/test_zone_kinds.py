"""Zone kinds of the simulated site: where they are, how much of a view each covers, and that each
kind behaves as its definition says (noise fresh per instant, periodic with its period, detail
resolving only when zoomed in). Plus the kind fractions' way into the frame manifests."""

from __future__ import annotations

from datetime import UTC, datetime

import cv2
import numpy as np
import pytest

from services.camera.sim import DynamicsConfig, SimWorld, SimWorldConfig, site_layout
from shared.camera_client import ClientSnapshot
from shared.pose import Pose, PoseRanges
from shared.recording import RoundRecorder
from shared.scene import ZONE_KINDS
from shared.schemas import FrameRecord
from shared.store import Store, encode_jpeg

BENCH_RANGES = PoseRanges(tilt_min=-20.0, tilt_max=30.0, zoom_min=1.0, zoom_max=8.0)


@pytest.fixture(scope="module")
def steady_world() -> SimWorld:
    """The small world without a day cycle (gains stay 1), so only the zones change with t."""
    return SimWorld(SimWorldConfig(seed=0, pano_width=1024, pano_height=512,
                                   dynamics=DynamicsConfig(day_period_s=1e12)))


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.parametrize("seed", [0, 1, 2, 7])
def test_every_kind_has_a_zone_within_reach(seed: int) -> None:
    world = SimWorld(SimWorldConfig(seed=seed, ranges=BENCH_RANGES),
                     panorama=np.full((256, 512, 3), 128, np.uint8))
    kinds = world.zone_kinds()
    assert set(kinds.values()) == set(ZONE_KINDS) - {"static"}
    for name, rect in site_layout(seed).zones().items():
        assert -15.0 <= rect.pitch_lo < rect.pitch_hi <= 25.0, name
        pose = world.zone_poses(8.0)[name]
        assert pose.tilt == pytest.approx(rect.centre[1]) and pose.pan == pytest.approx(rect.centre[0])


def test_kind_fractions_sum_to_one_and_agree_with_the_zone_mask(small_world: SimWorld) -> None:
    rng = np.random.default_rng(3)
    for _ in range(40):
        pose = Pose(rng.uniform(0, 360), rng.uniform(-20, 30), rng.uniform(1, 20))
        kf = small_world.kind_fractions(pose, 48, 40)
        assert tuple(kf) == ZONE_KINDS and all(0.0 <= v <= 1.0 for v in kf.values())
        assert sum(kf.values()) == pytest.approx(1.0)
        changing = kf["noise"] + kf["periodic"] + kf["movers"]
        assert changing == pytest.approx(small_world.dynamic_zone_fraction(pose, 48, 40))


def test_kind_fractions_are_right_where_the_truth_is_known(small_world: SimWorld) -> None:
    kinds = small_world.zone_kinds()
    for name, pose in small_world.zone_poses(zoom=20.0).items():
        kf = small_world.kind_fractions(pose)
        assert kf[kinds[name]] > 0.9, (name, kf)
    away = Pose(small_world.layout.road.centre[0], 60.0, 3.0)  # sky high above the road
    assert small_world.kind_fractions(away)["static"] == 1.0
    wide = small_world.kind_fractions(small_world.zone_poses(zoom=1.0)["screen"])
    assert 0.0 < wide["noise"] < 0.3 and wide["static"] > 0.3


def test_kind_fractions_without_dynamics_keep_only_detail() -> None:
    world = SimWorld(SimWorldConfig(seed=0, dynamics=DynamicsConfig(enabled=False)),
                     panorama=np.full((256, 512, 3), 128, np.uint8))
    assert world.kind_fractions(world.zone_poses(20.0)["board"])["detail"] > 0.9
    assert world.kind_fractions(world.zone_poses(20.0)["road"])["static"] == 1.0


def test_noise_is_fresh_at_every_instant_and_fixed_for_one(steady_world: SimWorld) -> None:
    pose = steady_world.zone_poses(zoom=12.0)["screen"]
    other = SimWorld(SimWorldConfig(seed=0, pano_width=1024, pano_height=512,
                                    dynamics=DynamicsConfig(day_period_s=1e12)))
    a = steady_world.render(pose, 5.0)
    assert np.array_equal(a, steady_world.render(pose, 5.0))
    assert np.array_equal(a, other.render(pose, 5.0))
    mask = steady_world.kind_mask(pose, 224, 224) == ZONE_KINDS.index("noise")
    assert mask.mean() > 0.9
    for later in (5.04, 5.5, 17.0):
        b = steady_world.render(pose, later)
        assert _diff(a[mask], b[mask]) > 40
        corr = np.corrcoef(a[mask].astype(float).ravel(), b[mask].astype(float).ravel())[0, 1]
        assert abs(corr) < 0.2


def test_dial_and_sign_repeat_with_their_period(steady_world: SimWorld) -> None:
    cfg = steady_world.config.dynamics
    for name, period in (("dial", cfg.dial_period_s), ("sign", cfg.blink_period_s)):
        pose = steady_world.zone_poses(zoom=12.0)[name]
        t = 0.3 * period
        a = steady_world.render(pose, t)
        assert _diff(a, steady_world.render(pose, t + period)) < 0.5, name
        assert _diff(a, steady_world.render(pose, t + 3 * period)) < 0.5, name
        assert _diff(a, steady_world.render(pose, t + period / 2)) > 2.0, name
    assert 3.0 <= cfg.dial_period_s <= 60.0 and 3.0 <= cfg.blink_period_s <= 60.0


def test_the_sign_shows_its_phase_when_unlit(steady_world: SimWorld) -> None:
    cfg = steady_world.config.dynamics
    sign = steady_world.zone_poses(zoom=6.0)["sign"]  # the whole panel in view
    t0, t1 = 0.6 * cfg.blink_period_s, 0.85 * cfg.blink_period_s
    assert not steady_world.light_on(t0) and not steady_world.light_on(t1)
    a, b = steady_world.render(sign, t0), steady_world.render(sign, t1)
    assert np.abs(a.astype(np.int16) - b.astype(np.int16)).max() > 60  # the chaser bulb moved on


def _high_freq(img: np.ndarray) -> float:
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(cv2.Laplacian(grey, cv2.CV_32F)).mean())


def test_detail_resolves_only_when_zoomed_in() -> None:
    world = SimWorld(SimWorldConfig(seed=0), panorama=np.full((2048, 4096, 3), 128, np.uint8))
    board = world.zone_poses(zoom=8.0)["board"]
    near = world.render(board, 0.0)
    wide = world.render(Pose(board.pan, board.tilt, 1.0), 0.0)
    side = round(224 / 8)  # the centre of the wide view covering the same angles as `near`
    crop = wide[112 - side // 2:112 + side // 2, 112 - side // 2:112 + side // 2]
    upsampled = cv2.resize(crop, (224, 224), interpolation=cv2.INTER_LINEAR)
    assert _high_freq(near) > 4.0 * _high_freq(upsampled)
    blurred = cv2.GaussianBlur(near, (0, 0), 3.0)
    assert _high_freq(near) > 4.0 * _high_freq(blurred)
    assert world.dynamic_zone_fraction(board) == 0.0  # static: nothing there changes
    assert np.array_equal(near, world.render(board, world.config.dynamics.day_period_s))  # same light


def _blobs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Areas and (x, y) centroids of the connected blobs of a mask."""
    n, _, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    assert n > 1
    return stats[1:, cv2.CC_STAT_AREA], centroids[1:]


def _near(canvas: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    return np.abs(canvas.astype(np.int16) - np.array(color, np.int16)).max(axis=2) < 12


def test_a_boat_shows_its_heading_by_its_wake() -> None:
    world = SimWorld(SimWorldConfig(seed=0), panorama=np.full((2048, 4096, 3), 128, np.uint8))
    zone = next(z for z in world.dynamics.zones if z.name == "lake")
    static = np.full((zone.height + 2 * zone.margin, zone.width + 2 * zone.margin, 3), 128, np.uint8)
    for t in (5.0, 20.0, 33.0, 47.0):
        now, soon = (world.dynamics.draw(zone, static, t + dt) for dt in (0.0, 1.0))
        areas, hulls = _blobs(_near(now, (92, 52, 30)))
        hull = hulls[int(np.argmax(areas))]  # the nearer, bigger boat
        areas_soon, hulls_soon = _blobs(_near(soon, (92, 52, 30)))
        hull_soon = hulls_soon[int(np.argmax(areas_soon))]
        _, wakes = _blobs(_near(now, (226, 236, 240)))
        wake = wakes[int(np.argmin(np.abs(wakes[:, 1] - hull[1]) * 100 + np.abs(wakes[:, 0] - hull[0])))]
        assert np.sign(wake[0] - hull[0]) == -np.sign(hull_soon[0] - hull[0]), t  # the wake trails


def test_frame_records_carry_kind_fractions(tmp_path) -> None:
    kinds = {"noise": 0.1, "periodic": 0.0, "movers": 0.25, "detail": 0.0, "static": 0.65}
    store = Store(str(tmp_path / "store"))
    recorder = RoundRecorder(store, node="n", camera="c", round_id="r0", source="sweep")
    jpeg = encode_jpeg(np.zeros((8, 8, 3), np.uint8), 90)
    for fractions in (kinds, None):
        recorder.add(ClientSnapshot(jpeg=jpeg, pose=Pose(1.0, 2.0, 3.0), captured_at=datetime.now(UTC),
                                    sim_time=1.5, dynamic_fraction=0.2, kind_fractions=fractions),
                     action=None)
    records = store.read_manifest(recorder.close() or "")
    assert records[0].kind_fractions == kinds and records[1].kind_fractions is None
    line = records[0].model_dump_json()
    assert FrameRecord.model_validate_json(line) == records[0]
    old = records[0].model_dump(mode="json")
    del old["kind_fractions"]  # manifests written before the field read as "not known"
    assert FrameRecord.model_validate(old).kind_fractions is None
