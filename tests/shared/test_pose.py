import math

import numpy as np
import pytest

from shared.pose import ACTIONS, N_ACTIONS, Pose, PoseRanges, apply_action, normalise, normalise_batch

R = PoseRanges()


def test_there_are_the_originals_21_actions():
    assert N_ACTIONS == 21 and ACTIONS[0].name == "noop"
    assert len({a.name for a in ACTIONS}) == 21


def test_pan_wraps_tilt_and_zoom_clamp():
    p = R.apply(Pose(365.0, 120.0, 0.5))
    assert p == Pose(5.0, 90.0, 1.0)
    assert R.apply(Pose(-10.0, -50.0, 99.0)) == Pose(350.0, -20.0, 20.0)


def test_non_wrapping_pan_clamps():
    axis = PoseRanges(-180, 180, -180, 180, 1, 9999, pan_wraps=False)
    assert axis.apply(Pose(200, 0, 1)).pan == 180


def test_actions_wrap_and_clamp():
    jump_right = ACTIONS.index(next(a for a in ACTIONS if a.name == "jump_right"))
    p = apply_action(Pose(359.5, 89.0, 19.0), jump_right, R)
    assert p.pan == pytest.approx(9.5)
    up = apply_action(Pose(0, 89.0, 1), [a.name for a in ACTIONS].index("jump_up"), R)
    assert up.tilt == 90.0
    zin = apply_action(Pose(0, 0, 19.5), [a.name for a in ACTIONS].index("long_zoom_in"), R)
    assert zin.zoom == 20.0


def test_normalisation_is_continuous_across_the_pan_seam():
    a, b, c = normalise(Pose(0, 0, 1), R), normalise(Pose(360, 0, 1), R), normalise(Pose(359, 0, 1), R)
    assert np.allclose(a, b, atol=1e-6)
    assert np.linalg.norm(a - c) < 0.02
    assert np.all(np.abs(normalise(Pose(123, 90, 20), R)) <= 1.0 + 1e-6)


def test_axis_zoom_units_are_scaled():
    axis = PoseRanges(-180, 180, -180, 180, 1, 9999, pan_wraps=False)
    assert normalise(Pose(0, 0, 9999), axis)[3] == pytest.approx(1.0)
    assert normalise(Pose(0, 0, 1), axis)[3] == pytest.approx(-1.0)


def test_batch_matches_single():
    poses = np.array([[10, 5, 2], [350, -20, 20], [180, 90, 1]], dtype=np.float32)
    batch = normalise_batch(poses, R)
    for row, p in zip(batch, poses, strict=True):
        assert np.allclose(row, normalise(Pose(*map(float, p)), R), atol=1e-6)


def test_range_checks_explain_problems():
    assert R.check(Pose(10, 0, 2)) == []
    problems = R.check(Pose(400, 100, 0.5))
    assert any("pan" in p for p in problems) and any("tilt" in p for p in problems)
    assert any("zoom" in p for p in problems)
    assert R.check(Pose(math.nan, 0, 1)) == ["pan must be a finite number, got nan"]
    assert R.check_delta(0, 500, 0)
    with pytest.raises(ValueError, match="empty"):
        PoseRanges(tilt_min=5, tilt_max=5)
