"""Each probe scores well where the answer is exactly recoverable and badly on a broken model or
states that carry no information: a probe that cannot fail would measure nothing."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from services.worldmodel.evaluate import pooled_features
from services.worldmodel.probes import (
    action_recognition,
    collapse_guard,
    inverse_dynamics,
    place_recognition,
    pose_deltas,
    ratio_by_kind,
    same_pose,
    wrapped_deg,
)
from shared.models.world_model import normalise_poses
from shared.pose import N_ACTIONS, ActionScale, PoseRanges, apply_action, random_pose

RANGES = PoseRanges(tilt_min=-20.0, tilt_max=30.0, zoom_min=1.0, zoom_max=8.0)
SCALE = ActionScale(pan_tilt_deg=4.0, zoom_log_step=2.0)
TOKENS = 4


def pose_states(poses: np.ndarray) -> torch.Tensor:
    """States that are an exact code of the pose: every token holds the normalised pose."""
    return normalise_poses(poses, RANGES)[:, None, :].expand(-1, TOKENS, -1).contiguous()


class OracleModel:
    """Predicts exactly the state of the target pose (a perfect action-conditioned model)."""

    def predict(self, state, pose_from, pose_to, ranges=None, *, dt):
        return pose_states(np.asarray(pose_to)), torch.zeros(len(state))


class ConstantModel:
    """Predicts the same state whatever the action (a model that ignores its conditioning)."""

    def predict(self, state, pose_from, pose_to, ranges=None, *, dt):
        return torch.zeros_like(state), torch.zeros(len(state))


def action_pairs(n: int, seed: int = 0):
    """n pairs (pose, pose after a random action), as one (2n, 3) pose array and src/dst indices."""
    rng = random.Random(seed)
    poses = []
    for _ in range(n):
        p = RANGES.apply(random_pose(rng, RANGES))
        poses += [p.as_tuple(), apply_action(p, rng.randrange(N_ACTIONS), RANGES, SCALE).as_tuple()]
    src = np.arange(0, 2 * n, 2)
    return np.array(poses), src, src + 1


def test_action_recognition_is_perfect_for_an_exact_model_and_near_chance_for_a_constant_one():
    poses, src, dst = action_pairs(60)
    dts = np.full(len(src), 0.6)
    states = pose_states(poses)
    good = action_recognition(OracleModel(), states, poses, dts, src, dst, RANGES, SCALE)
    bad = action_recognition(ConstantModel(), states, poses, dts, src, dst, RANGES, SCALE)
    assert good["top1"] == 1.0 and good["pairs"] == 60
    assert bad["top1"] < 0.25
    assert bad["chance"] == pytest.approx(1 / 21)
    # Clamped candidates tie with the truth, so guessing scores at least 1/21.
    assert bad["chance_with_ties"] >= 1 / 21


def test_action_recognition_counts_a_clamped_tie_as_a_hit():
    # At the top of the tilt range, "up" and "noop" reach the same pose: either pick is right.
    poses = np.array([[100.0, 30.0, 2.0], [100.0, 30.0, 2.0]])
    states = pose_states(poses)
    out = action_recognition(ConstantModel(), states, poses, np.array([0.5]), np.array([0]),
                             np.array([1]), RANGES, SCALE)
    assert out["top1"] == 1.0
    assert out["chance_with_ties"] > 1 / 21


def test_same_pose_and_wrapped_angles():
    assert wrapped_deg(np.array([350.0, -190.0, 10.0])).tolist() == [-10.0, 170.0, 10.0]
    assert same_pose(np.array([359.9999999, 0.0, 1.0]), np.array([-1e-7, 0.0, 1.0]))
    assert not same_pose(np.array([10.0, 0.0, 1.0]), np.array([10.0, 0.0, 1.1]))


def linear_pose_states(poses: np.ndarray, seed: int = 0) -> torch.Tensor:
    """States whose token mean is a linear code of (pan, tilt, log zoom), plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    code = torch.tensor(np.stack([poses[:, 0] / 100.0, poses[:, 1] / 10.0, np.log(poses[:, 2])], 1),
                        dtype=torch.float32)
    return code[:, None, :] + 0.01 * torch.randn(len(poses), TOKENS, 3, generator=g)


def noise_states(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, TOKENS, 3, generator=torch.Generator().manual_seed(seed))


def pooled(states: torch.Tensor) -> np.ndarray:
    return pooled_features(states)


def move_pairs(n: int, seed: int):
    """Pairs without pan wrap (pans in [60, 300]), as (poses, (src, dst))."""
    rng = random.Random(seed)
    ranges = PoseRanges(pan_min=60.0, pan_max=300.0, pan_wraps=False, tilt_min=-20.0, tilt_max=30.0,
                        zoom_min=1.0, zoom_max=8.0)
    poses = []
    for _ in range(n):
        p = ranges.apply(random_pose(rng, ranges))
        poses += [p.as_tuple(), apply_action(p, rng.randrange(N_ACTIONS), ranges, SCALE).as_tuple()]
    src = np.arange(0, 2 * n, 2)
    return np.array(poses), (src, src + 1)


def test_inverse_dynamics_reads_an_exact_code_and_not_noise():
    fit_p, fit_pairs = move_pairs(150, seed=1)
    test_p, test_pairs = move_pairs(100, seed=2)
    good = inverse_dynamics(pooled(linear_pose_states(fit_p, 1)), fit_p, fit_pairs,
                            pooled(linear_pose_states(test_p, 2)), test_p, test_pairs)
    bad = inverse_dynamics(pooled(noise_states(len(fit_p), 1)), fit_p, fit_pairs,
                           pooled(noise_states(len(test_p), 2)), test_p, test_pairs)
    assert good["r2"] > 0.95
    assert min(good["r2_per_output"].values()) > 0.9
    assert bad["r2"] < 0.2
    assert good["pairs"] == {"fit": 150, "score": 100}


def test_pose_deltas_wrap_pan_and_take_log_zoom():
    poses = np.array([[355.0, 0.0, 1.0], [5.0, 2.0, np.e]])
    d = pose_deltas(poses, np.array([0, 1]), np.array([1, 0]))
    np.testing.assert_allclose(d, [[10.0, 2.0, 1.0], [-10.0, -2.0, -1.0]])


def test_collapse_guard_reads_tilt_and_zoom_from_a_code_and_not_from_a_collapsed_state():
    rng = random.Random(0)
    fit_p = np.array([RANGES.apply(random_pose(rng, RANGES)).as_tuple() for _ in range(200)])
    test_p = np.array([RANGES.apply(random_pose(rng, RANGES)).as_tuple() for _ in range(100)])
    good = collapse_guard(pooled(linear_pose_states(fit_p, 1)), fit_p,
                          pooled(linear_pose_states(test_p, 2)), test_p)
    collapsed = torch.ones(len(fit_p), TOKENS, 3)
    bad = collapse_guard(pooled(collapsed), fit_p, pooled(torch.ones(len(test_p), TOKENS, 3)), test_p)
    assert good["tilt"] > 0.95 and good["log_zoom"] > 0.95
    assert bad["tilt"] < 0.05 and bad["log_zoom"] < 0.05


def circle_states(pans: np.ndarray, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    rad = np.radians(pans)
    code = torch.tensor(np.stack([np.sin(rad), np.cos(rad), np.zeros_like(rad)], 1), dtype=torch.float32)
    return code[:, None, :] + 0.001 * torch.randn(len(pans), TOKENS, 3, generator=g)


def test_place_recognition_finds_the_pan_of_a_code_and_guesses_on_noise():
    rng = np.random.default_rng(0)
    fit_pan, test_pan = rng.uniform(0, 360, 400), rng.uniform(0, 360, 200)
    good = place_recognition(pooled(circle_states(fit_pan, 1)), fit_pan,
                             pooled(circle_states(test_pan, 2)), test_pan)
    bad = place_recognition(pooled(noise_states(400, 1)), fit_pan, pooled(noise_states(200, 2)), test_pan)
    assert good["median_pan_err_deg"] < 3.0
    assert bad["median_pan_err_deg"] > 45.0
    several = place_recognition(pooled(circle_states(fit_pan, 1)), fit_pan,
                                pooled(circle_states(test_pan, 2)), test_pan, k=5)
    assert several["median_pan_err_deg"] < 5.0 and several["k"] == 5


def test_place_recognition_error_is_wrap_aware():
    # Neighbours at 359 and 1 degrees average to 0, and a truth at 0 is then 0 degrees off.
    def two_tokens(first: list[float]) -> torch.Tensor:
        return torch.tensor([[[x, 0.0, 0.0]] * 2 for x in first])

    out = place_recognition(pooled(two_tokens([1.0, 1.0, -5.0])), np.array([359.0, 1.0, 180.0]),
                            pooled(two_tokens([1.0])), np.array([0.0]), k=2)
    assert out["median_pan_err_deg"] == pytest.approx(0.0, abs=1e-9)


def test_ratio_by_kind_weights_each_transition_by_its_target_fraction():
    model_err, copy_err = np.array([1.0, 4.0, 2.0]), np.array([2.0, 2.0, 2.0])
    out = ratio_by_kind(model_err, copy_err, {"noise": np.array([1.0, 0.0, 0.5]),
                                              "static": np.array([0.0, 1.0, 0.5]),
                                              "movers": np.zeros(3)})
    assert out["noise"] == pytest.approx((1.0 + 1.0) / (2.0 + 1.0))
    assert out["static"] == pytest.approx((4.0 + 1.0) / (2.0 + 1.0))
    assert out["movers"] is None
    # A kind covering every view gets the overall ratio of means.
    whole = ratio_by_kind(model_err, copy_err, {"all": np.ones(3)})["all"]
    assert whole == pytest.approx(model_err.mean() / copy_err.mean())
