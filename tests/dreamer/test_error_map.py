"""The measured error map: it recovers a known move term and scene map, leaves content new to
the view out, matches real moves to actions, measures the model's own error on each within-round
transition and token, and gives dreams their measured rewards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from services.dreamer.error_map import (
    MIN_HOLDS,
    ErrorMapError,
    error_map_from_frames,
    fit_error_map,
    infer_actions,
    measure_transitions,
)
from services.dreamer.rollout import advance_poses, generate
from services.dreamer.view_atlas import view_rays
from shared.models.surprise import per_transition_error
from shared.models.world_model import normalise_poses
from shared.pose import N_ACTIONS, ActionScale, PoseRanges

RANGES = PoseRanges(0.0, 360.0, -30.0, 30.0, 1.0, 10.0, True)
SCALE = ActionScale(pan_tilt_deg=4.0)
HFOV = 60.0


def random_poses(rng, n):
    return np.stack([rng.uniform(0, 360, n), rng.uniform(-30, 30, n),
                     np.exp(rng.uniform(0, np.log(10), n))], 1)


def hot_tokens(poses: np.ndarray) -> np.ndarray:
    """Token errors of a scene with a dynamic zone at yaw 80..100, pitch -20..0 (1.0) and a
    static rest (0.1), at each token's direction."""
    rays = view_rays(poses, HFOV, 8)
    yaw = np.degrees(np.arctan2(rays[..., 0], rays[..., 2])) % 360.0
    pitch = np.degrees(np.arcsin(rays[..., 1]))
    return np.where((yaw > 80) & (yaw < 100) & (pitch > -20) & (pitch < 0), 1.0, 0.1)


def test_fit_recovers_a_known_move_term_and_a_hot_region():
    rng = np.random.default_rng(0)
    src = random_poses(rng, 600)
    actions = rng.integers(0, N_ACTIONS, 600)
    dest = advance_poses(torch.from_numpy(src), torch.from_numpy(actions), RANGES, SCALE).numpy()
    move = np.linspace(0.0, 0.1, N_ACTIONS)
    tokens = hot_tokens(dest)
    errors = move[actions] + tokens.mean(1)
    emap = fit_error_map(src, dest, actions, errors, tokens, HFOV)
    assert np.corrcoef(emap.move, move)[0, 1] > 0.95
    inside, outside = emap.view([[90.0, -10.0, 8.0]]), emap.view([[270.0, -10.0, 8.0]])
    assert inside[0] > 0.7 and outside[0] < 0.15
    assert emap.explained > 0.9
    assert emap.transitions == 600 and emap.summary()["transitions"] == 600


def test_content_the_move_brought_or_slid_is_left_out():
    """Jumps land far from where they started: their tokens show new content, whose huge error
    says nothing about the scene there, and so do views that slid by half a view; stays show
    what the scene does by itself."""
    rng = np.random.default_rng(1)
    dest = random_poses(rng, 200)
    far = dest.copy()
    far[:, 0] = (far[:, 0] + 180.0) % 360.0  # the view behind: nothing of it was in view
    slid = dest.copy()
    slid[:, 0] += 30.0 / slid[:, 2] / 2.0  # half a view to the right: everything moved 1 half-width
    src = np.concatenate([dest[:100], far[100:150], slid[150:]])
    tokens = np.where(np.arange(200)[:, None] < 100, 0.1, 9.0) * np.ones((1, 64))
    emap = fit_error_map(src, dest, np.zeros(200, np.int64), tokens.mean(1), tokens, HFOV)
    assert emap.atlas.tokens == 100 * 64 and emap.atlas.mean == pytest.approx(0.1)
    with pytest.raises(ErrorMapError, match="held in place"):
        fit_error_map(far, dest, np.zeros(200, np.int64), tokens.mean(1), tokens, HFOV)


def test_holds_alone_make_the_atlas_once_there_are_enough():
    """A quarter-cell shift keeps every token in place but leaves the warp's sub-cell error (here
    a large one); once the frames hold MIN_HOLDS holds, only those are measured."""
    rng = np.random.default_rng(3)
    dest = random_poses(rng, 100)
    shifted = dest.copy()
    shifted[:, 0] += HFOV / dest[:, 2] / 8 / 4  # a quarter of a cell
    tokens = np.where(np.arange(100)[:, None] < MIN_HOLDS, 0.1, 5.0) * np.ones((1, 64))
    src = np.concatenate([dest[:MIN_HOLDS], shifted[MIN_HOLDS:]])
    emap = fit_error_map(src, dest, np.zeros(100, np.int64), tokens.mean(1), tokens, HFOV)
    assert emap.atlas_source == "holds" and emap.holds == MIN_HOLDS
    assert emap.atlas.tokens == MIN_HOLDS * 64 and emap.atlas.mean == pytest.approx(0.1)
    assert emap.summary()["atlas_source"] == "holds"
    few = MIN_HOLDS - 1  # too few holds: every token held within a cell counts
    src = np.concatenate([dest[:few], shifted[few:]])
    emap = fit_error_map(src, dest, np.zeros(100, np.int64), tokens.mean(1), tokens, HFOV)
    assert emap.atlas_source == "in_place" and emap.holds == few
    assert emap.atlas.tokens == 100 * 64


def test_fit_rejects_bad_input():
    one, two, three = ([[0.0, 0.0, 1.0]] * n for n in (1, 2, 3))
    with pytest.raises(ErrorMapError, match="at least 2"):
        fit_error_map(one, one, [0], [0.1], np.ones((1, 64)), HFOV)
    with pytest.raises(ValueError, match="same length"):
        fit_error_map(three, three, [0, 1], [0.1, 0.2, 0.3], np.ones((3, 64)), HFOV)
    with pytest.raises(ValueError, match="finite"):
        fit_error_map(two, two, [0, 1], [0.1, float("nan")], np.ones((2, 64)), HFOV)
    with pytest.raises(ValueError, match="actions must be"):
        fit_error_map(two, two, [0, N_ACTIONS], [0.1, 0.2], np.ones((2, 64)), HFOV)


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
    times = 1000.0 + np.cumsum(rng.uniform(0.3, 4.0, 9))  # capture seconds, uneven gaps
    m = measure_transitions(tiny_wm, states, poses, rounds, RANGES, SCALE, batch=2, times=times)
    src, dst = np.array([0, 1, 3, 6, 7]), np.array([1, 2, 4, 7, 8])
    np.testing.assert_array_equal(m["dest_poses"], poses[dst])
    np.testing.assert_array_equal(m["source_poses"], poses[src])
    np.testing.assert_allclose(m["dt"], times[dst] - times[src])
    assert m["token_errors"].shape == (5, tiny_wm.cfg.encoder.n_tokens)
    np.testing.assert_allclose(m["token_errors"].mean(1), m["errors"])
    # each pair predicted for the real seconds between its frames
    pred, _ = tiny_wm.predict(states[src], normalise_poses(poses[src], RANGES),
                              normalise_poses(poses[dst], RANGES), dt=times[dst] - times[src])
    want = per_transition_error(pred[:, None], states[dst][:, None])[:, 0]
    np.testing.assert_allclose(m["errors"], want.double().numpy(), rtol=1e-5)
    other = measure_transitions(tiny_wm, states, poses, rounds, RANGES, SCALE, times=2 * times)
    assert not np.array_equal(other["errors"], m["errors"])  # the seconds reach the model
    capped = measure_transitions(tiny_wm, states, poses, rounds, RANGES, SCALE, max_transitions=2,
                                 times=times)
    np.testing.assert_array_equal(capped["dest_poses"], poses[[7, 8]])  # the most recent ones
    with pytest.raises(ErrorMapError, match="two consecutive frames"):
        measure_transitions(tiny_wm, states, poses, np.arange(9), RANGES, SCALE, times=times)
    with pytest.raises(ValueError, match="same length"):
        measure_transitions(tiny_wm, states, poses[:5], rounds, RANGES, SCALE, times=times)
    with pytest.raises(ValueError, match="same length"):
        measure_transitions(tiny_wm, states, poses, rounds, RANGES, SCALE, times=times[:5])


def test_dreams_carry_the_measured_terms(tiny_wm):
    rng = np.random.default_rng(4)
    frames = rng.integers(0, 255, (12, 32, 32, 3), dtype=np.uint8)
    states = tiny_wm.encode_state(frames)
    poses = random_poses(rng, 12)
    poses[:6] = [[100.0 + 0.5 * k, -10.0, 2.0] for k in range(6)]  # short pans: content held in
    poses[6:] = [[200.0, 5.0 + 0.5 * k, 4.0] for k in range(6)]    # place across the moves
    emap = error_map_from_frames(tiny_wm, states, poses, np.repeat([0, 1], 6), RANGES, SCALE,
                                 times=np.arange(12.0))
    d = generate(tiny_wm, states[:4], poses[:4], RANGES, 5, torch.Generator().manual_seed(0),
                 scale=SCALE, error_map=emap)
    assert d.measured_move.shape == (4, 5) and d.measured_view.shape == (4, 6)
    made = infer_actions(d.poses[:, :-1].double().reshape(-1, 3).numpy(),
                         d.poses[:, 1:].double().reshape(-1, 3).numpy(), RANGES, SCALE)
    torch.testing.assert_close(d.measured_move,
                               torch.from_numpy(emap.move[made].reshape(4, 5)).float())
    want_view = emap.view(d.poses.double().reshape(-1, 3).numpy()).reshape(4, 6)
    torch.testing.assert_close(d.measured_view, torch.from_numpy(want_view).float(),
                               rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(d.rewards("measured_view"), d.measured_view[:, 1:])
    torch.testing.assert_close(d.rewards("measured"), d.measured_move + d.measured_view[:, 1:])
    # balanced: each term in units of its spread over the dreams, so neither drowns the other
    move, view = d.measured_move, d.measured_view[:, 1:]
    torch.testing.assert_close(d.rewards("measured_balanced"),
                               (move - move.mean()) / move.std() + (view - view.mean()) / view.std())
    torch.testing.assert_close(d.rewards("measured_balanced", view_weight=3.0),
                               (move - move.mean()) / move.std()
                               + 3.0 * (view - view.mean()) / view.std())
    for bad in (0.0, -2.0, float("nan")):
        with pytest.raises(ValueError, match="view_weight"):
            d.rewards("measured_balanced", view_weight=bad)
    # Pressing against a limit earns the move term of what the camera did: nothing.
    at_limit = np.array([[100.0, 30.0, 10.0]] * 4)
    zoom_in, jump_up = 15, 19
    stuck = generate(tiny_wm, states[:4], at_limit, RANGES, 5, scale=SCALE, error_map=emap,
                     actions=torch.tensor([[zoom_in] * 5, [jump_up] * 5, [zoom_in, jump_up] * 2
                                           + [0], [0] * 5]))
    torch.testing.assert_close(stuck.measured_move, torch.full((4, 5), float(emap.move[0])))
    plain = generate(tiny_wm, states[:4], poses[:4], RANGES, 5, torch.Generator().manual_seed(0))
    assert plain.measured_move is None and plain.measured_view is None
    for kind in ("measured", "measured_balanced"):
        with pytest.raises(ValueError, match="measured error map"):
            plain.rewards(kind)
