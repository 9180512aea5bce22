"""The measured error map: it recovers a known map, matches real moves to actions, measures the
model's own error on each within-round transition, and gives dreams their measured rewards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from services.dreamer.error_map import (ErrorMapError, error_map_from_frames, fit_error_map,
                                        infer_actions, measure_transitions)
from services.dreamer.rollout import advance_poses, generate
from shared.models.surprise import per_transition_error
from shared.models.world_model import normalise_poses
from shared.pose import N_ACTIONS, ActionScale, PoseRanges

RANGES = PoseRanges(0.0, 360.0, -30.0, 30.0, 1.0, 10.0, True)
SCALE = ActionScale(pan_tilt_deg=4.0)


def random_poses(rng, n):
    return np.stack([rng.uniform(0, 360, n), rng.uniform(-30, 30, n),
                     np.exp(rng.uniform(0, np.log(10), n))], 1)


def test_fit_recovers_a_known_move_term_and_a_hot_region():
    rng = np.random.default_rng(0)
    poses = random_poses(rng, 600)
    actions = rng.integers(0, N_ACTIONS, 600)
    move = np.linspace(0.0, 0.1, N_ACTIONS)
    # A dynamic zone around pan 90, tilt 0 (the pan difference wraps: 350 is near 10).
    dpan = np.minimum(np.abs(poses[:, 0] - 90.0), 360.0 - np.abs(poses[:, 0] - 90.0))
    hot = np.exp(-0.5 * (dpan / 15.0) ** 2 - 0.5 * (poses[:, 1] / 10.0) ** 2)
    errors = move[actions] + 0.05 * hot + 0.003 * rng.standard_normal(600)
    emap = fit_error_map(poses, actions, errors)
    assert np.corrcoef(emap.move, move)[0, 1] > 0.99
    inside, outside = emap.view([[90.0, 0.0, 2.0], [92.0, 2.0, 3.0]]), emap.view([[270.0, 0.0, 2.0]])
    assert inside.min() > 0.025 and abs(outside[0]) < 0.01
    assert emap.loo_error < 0.5 * emap.baseline_error  # the view term explains much of the rest
    assert emap.transitions == 600 and emap.summary()["transitions"] == 600


def test_wrap_around_pan_zero():
    """Views either side of pan 0 / 360 are neighbours."""
    rng = np.random.default_rng(1)
    poses = random_poses(rng, 400)
    near_zero = np.minimum(poses[:, 0], 360.0 - poses[:, 0]) < 20.0
    errors = np.where(near_zero, 0.05, 0.0) + 0.001 * rng.standard_normal(400)
    emap = fit_error_map(poses, np.zeros(400, np.int64), errors)
    v = emap.view([[359.0, 0.0, 2.0], [1.0, 0.0, 2.0], [180.0, 0.0, 2.0]])
    assert v[0] > 0.025 and v[1] > 0.025 and v[2] < 0.01


def test_fit_rejects_bad_input():
    with pytest.raises(ErrorMapError, match="at least 2"):
        fit_error_map([[0.0, 0.0, 1.0]], [0], [0.1])
    with pytest.raises(ValueError, match="same length"):
        fit_error_map([[0.0, 0.0, 1.0]] * 3, [0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="finite"):
        fit_error_map([[0.0, 0.0, 1.0]] * 2, [0, 1], [0.1, float("nan")])
    with pytest.raises(ValueError, match="actions must be"):
        fit_error_map([[0.0, 0.0, 1.0]] * 2, [0, N_ACTIONS], [0.1, 0.2])


def test_infer_actions_recovers_moves_with_wrap_and_clamp():
    rng = np.random.default_rng(2)
    start = random_poses(rng, 300)
    start[:20, 0] = 359.0     # pan wraps
    start[20:40, 1] = 30.0    # tilt at its limit
    actions = torch.from_numpy(rng.integers(0, N_ACTIONS, 300))
    end = advance_poses(torch.from_numpy(start), actions, RANGES, SCALE).numpy()
    got = infer_actions(start, end, RANGES, SCALE)
    # At a limit several actions land on the same pose (a clamped jump = a clamped long move):
    # any of them is right; away from the limits it is the action taken.
    again = advance_poses(torch.from_numpy(start), torch.from_numpy(got), RANGES, SCALE).numpy()
    np.testing.assert_allclose(again, end, atol=1e-9)
    free = (start[:, 1] > -18) & (start[:, 1] < 18) & (start[:, 2] > 1.6) & (start[:, 2] < 6)
    np.testing.assert_array_equal(got[free], actions.numpy()[free])


def test_measure_transitions_pairs_frames_within_rounds_only(tiny_wm):
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 255, (9, 32, 32, 3), dtype=np.uint8)
    states = tiny_wm.encode_state(frames)
    poses = random_poses(rng, 9)
    rounds = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3])  # pairs: 0-1, 1-2, 3-4, 6-7, 7-8
    m = measure_transitions(tiny_wm, states, poses, rounds, RANGES, SCALE, batch=2)
    src, dst = np.array([0, 1, 3, 6, 7]), np.array([1, 2, 4, 7, 8])
    np.testing.assert_array_equal(m["dest_poses"], poses[dst])
    pred, _ = tiny_wm.predict(states[src], normalise_poses(poses[src], RANGES),
                              normalise_poses(poses[dst], RANGES))
    want = per_transition_error(pred[:, None], states[dst][:, None])[:, 0]
    np.testing.assert_allclose(m["errors"], want.double().numpy(), rtol=1e-5)
    capped = measure_transitions(tiny_wm, states, poses, rounds, RANGES, SCALE, max_transitions=2)
    np.testing.assert_array_equal(capped["dest_poses"], poses[[7, 8]])  # the most recent ones
    with pytest.raises(ErrorMapError, match="two consecutive frames"):
        measure_transitions(tiny_wm, states, poses, np.arange(9), RANGES, SCALE)
    with pytest.raises(ValueError, match="same length"):
        measure_transitions(tiny_wm, states, poses[:5], rounds, RANGES, SCALE)


def test_dreams_carry_the_measured_terms(tiny_wm):
    rng = np.random.default_rng(4)
    frames = rng.integers(0, 255, (12, 32, 32, 3), dtype=np.uint8)
    states = tiny_wm.encode_state(frames)
    poses = random_poses(rng, 12)
    emap = error_map_from_frames(tiny_wm, states, poses, np.repeat([0, 1], 6), RANGES, SCALE)
    d = generate(tiny_wm, states[:4], poses[:4], RANGES, 5, torch.Generator().manual_seed(0),
                 scale=SCALE, error_map=emap)
    assert d.measured_move.shape == (4, 5) and d.measured_view.shape == (4, 6)
    torch.testing.assert_close(d.measured_move, torch.from_numpy(emap.move[d.actions.numpy()]).float())
    want_view = emap.view(d.poses.double().reshape(-1, 3).numpy()).reshape(4, 6)
    torch.testing.assert_close(d.measured_view, torch.from_numpy(want_view).float(),
                               rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(d.rewards("measured_view"), d.measured_view[:, 1:])
    torch.testing.assert_close(d.rewards("measured"), d.measured_move + d.measured_view[:, 1:])
    plain = generate(tiny_wm, states[:4], poses[:4], RANGES, 5, torch.Generator().manual_seed(0))
    assert plain.measured_move is None and plain.measured_view is None
    with pytest.raises(ValueError, match="measured error map"):
        plain.rewards("measured")
