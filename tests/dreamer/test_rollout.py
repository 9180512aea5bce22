"""Dream generation: shapes, pose wrap/clamp, one predictor call per step, reward variants."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from services.dreamer.rollout import advance_poses, dream_from_frames, generate
from shared.dreams import ObservationSpec, observation_from_states
from shared.move_times import MoveTimes
from shared.pose import ACTIONS, N_ACTIONS, NOOP, ActionScale, Pose, PoseRanges, apply_action

RANGES = PoseRanges(0.0, 360.0, -30.0, 30.0, 1.0, 10.0, True)


def states(model, b, seed=0):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 255, (b, 32, 32, 3), generator=g, dtype=torch.uint8).numpy()
    return model.encode_state(frames)


def test_generate_shapes_and_observation_space(tiny_wm):
    s0 = states(tiny_wm, 5)
    poses = np.array([[10.0, 0.0, 1.0]] * 5)
    spec = ObservationSpec(pool_grid=2)
    d = generate(tiny_wm, s0, poses, RANGES, 4, torch.Generator().manual_seed(1), spec=spec)
    obs_dim = spec.obs_dim(32)
    assert d.observations.shape == (5, 5, obs_dim)
    assert d.poses.shape == (5, 5, 3) and d.actions.shape == (5, 4)
    assert d.surprise.shape == (5, 4) and d.surprise_delta.shape == (5, 4)
    assert d.view_surprise.shape == (5, 5) and (d.view_surprise > 0).all()
    assert d.actions.min() >= 0 and d.actions.max() < N_ACTIONS
    assert torch.isfinite(d.observations).all() and (d.surprise > 0).all()
    # step 0 is exactly the run-time observation of the real start state
    torch.testing.assert_close(d.observations[:, 0], observation_from_states(s0, poses, RANGES, spec))
    tr = d.transitions("surprise")
    assert tr["obs"].shape == (20, obs_dim) and tr["next_obs"].shape == (20, obs_dim)
    torch.testing.assert_close(tr["next_obs"].reshape(5, 4, -1)[:, :-1], tr["obs"].reshape(5, 4, -1)[:, 1:])


def test_reward_variants(tiny_wm):
    d = generate(tiny_wm, states(tiny_wm, 3), np.array([[0.0, 0.0, 2.0]] * 3), RANGES, 6,
                 torch.Generator().manual_seed(2))
    assert torch.equal(d.rewards("surprise"), d.surprise)
    assert torch.all(d.surprise_delta[:, 0] == 0)
    torch.testing.assert_close(d.rewards("delta")[:, 1:], d.surprise[:, 1:] - d.surprise[:, :-1])
    torch.testing.assert_close(d.rewards("view"), d.view_surprise[:, 1:])
    torch.testing.assert_close(d.rewards("surprise_view"), d.surprise + d.view_surprise[:, 1:])
    with pytest.raises(ValueError, match="unknown reward"):
        d.rewards("nope")
    old = dataclasses.replace(d, view_surprise=None)  # dreams built by hand, without it
    assert torch.equal(old.rewards("delta"), d.surprise_delta)
    with pytest.raises(ValueError, match="needs the view surprise"):
        old.rewards("surprise_view")


# Seconds per action as a camera measures them: every action its own time.
TIMES = MoveTimes(seconds=tuple(0.5 + 0.1 * a for a in range(N_ACTIONS)), jump_s=3.0)


def test_surprise_is_the_models_own_per_transition_surprise(tiny_wm):
    """Step t is the model's prediction for the seconds its action takes (each dream its own)."""
    s0 = states(tiny_wm, 4)
    poses = np.array([[350.0, 5.0, 1.5], [0.0, -29.0, 9.0], [100.0, 0.0, 1.0], [200.0, 10.0, 3.0]])
    acts = torch.tensor([[18, 3], [20, 15], [0, 11], [17, 19]])
    d = generate(tiny_wm, s0, poses, RANGES, 2, actions=acts, move_times=TIMES)
    p1 = advance_poses(torch.tensor(poses), acts[:, 0], RANGES)
    dt = np.array([TIMES.seconds[a] for a in acts[:, 0].tolist()])
    nxt, s = tiny_wm.predict(s0, poses, p1, RANGES, dt=dt)
    torch.testing.assert_close(d.surprise[:, 0], s.float())
    torch.testing.assert_close(d.observations[:, 1], observation_from_states(nxt, p1, RANGES))
    torch.testing.assert_close(d.dt, torch.from_numpy(TIMES.of(acts)))
    assert d.move_times == TIMES
    # another time per move is another prediction: the seconds reach the model
    _, other = tiny_wm.predict(s0, poses, p1, RANGES, dt=dt + 5.0)
    assert not torch.allclose(other.float(), d.surprise[:, 0])


def test_default_move_times_are_one_second_each(tiny_wm):
    d = generate(tiny_wm, states(tiny_wm, 2), np.array([[0.0, 0.0, 1.0]] * 2), RANGES, 3,
                 torch.Generator().manual_seed(0))
    assert d.move_times == MoveTimes.uniform(1.0) and torch.all(d.dt == 1.0)


def test_view_surprise_is_the_surprise_of_holding_still_at_each_state(tiny_wm):
    """v_t = the model's surprise for the transition state t -> the same pose for the no-op's
    seconds; computed in the step's own predictor call, it equals a separate predict() of that
    transition."""
    s0 = states(tiny_wm, 3)
    poses = np.array([[350.0, 5.0, 1.5], [0.0, -29.0, 9.0], [100.0, 0.0, 1.0]])
    acts = torch.tensor([[18, 3], [20, 15], [0, 11]])
    d = generate(tiny_wm, s0, poses, RANGES, 2, actions=acts, move_times=TIMES)
    p = d.poses.double()
    state = s0
    for t in range(3):
        _, stay = tiny_wm.predict(state, p[:, t], p[:, t], RANGES, dt=TIMES.seconds[NOOP])
        torch.testing.assert_close(d.view_surprise[:, t], stay.float(), rtol=1e-4, atol=1e-6)
        if t < 2:
            state, _ = tiny_wm.predict(state, p[:, t], p[:, t + 1], RANGES, dt=d.dt[:, t])


def test_poses_wrap_and_clamp_like_apply_action():
    rng = np.random.default_rng(0)
    scale = ActionScale(pan_tilt_deg=4.0)
    poses = np.column_stack([rng.uniform(0, 360, 400), rng.uniform(-30, 30, 400),
                             np.exp(rng.uniform(0, np.log(10), 400))])
    poses[:5] = [[359.0, 29.0, 9.9], [1.0, -29.5, 1.01], [355.0, 0, 1], [0.0, 30.0, 10.0],
                 [5.0, -30.0, 1.0]]
    acts = torch.from_numpy(rng.integers(0, N_ACTIONS, 400))
    acts[:5] = torch.tensor([18, 20, 18, 17, 14])
    got = advance_poses(torch.from_numpy(poses), acts, RANGES, scale).numpy()
    want = np.array([apply_action(Pose(*p), int(a), RANGES, scale).as_tuple()
                     for p, a in zip(poses, acts.tolist(), strict=True)])
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert (got[:, 0] >= 0).all() and (got[:, 0] < 360).all()
    assert (got[:, 1] >= -30).all() and (got[:, 1] <= 30).all()
    assert (got[:, 2] >= 1).all() and (got[:, 2] <= 10).all()
    assert got[0, 0] == pytest.approx(19.0)  # 359 + 20 (a jump at 4 deg per unit) wraps to 19
    assert got[1, 1] == -30.0               # clamped


def test_dream_poses_stay_in_range(tiny_wm):
    d = generate(tiny_wm, states(tiny_wm, 8), np.array([[359.0, 29.0, 9.5]] * 8), RANGES, 12,
                 torch.Generator().manual_seed(3))
    p = d.poses
    assert (p[..., 0] >= 0).all() and (p[..., 0] < 360).all()
    assert (p[..., 1] >= -30).all() and (p[..., 1] <= 30).all()
    assert (p[..., 2] >= 1).all() and (p[..., 2] <= 10 + 1e-5).all()
    # and every step follows its action from the previous pose
    for t in range(12):
        want = advance_poses(p[:, t].double(), d.actions[:, t], RANGES)
        torch.testing.assert_close(p[:, t + 1].double(), want, atol=1e-4, rtol=0)


class CountingModel(torch.nn.Module):
    """A real world model whose predict calls are counted (not a mock: it delegates)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.calls = []

    def predict_with_stay(self, state, pose_from, pose_to, ranges=None, *, dt, stay_dt):
        self.calls.append(("step", state.shape[0]))
        return self.model.predict_with_stay(state, pose_from, pose_to, ranges, dt=dt,
                                            stay_dt=stay_dt)

    def stay_surprise(self, state, pose, ranges=None, *, dt):
        self.calls.append(("stay", state.shape[0]))
        return self.model.stay_surprise(state, pose, ranges, dt=dt)


@pytest.mark.parametrize("batch", [1, 7, 33])
def test_one_predictor_call_per_step_for_the_whole_batch(tiny_wm, batch):
    counting = CountingModel(tiny_wm)
    generate(counting, states(tiny_wm, batch), np.array([[0.0, 0.0, 1.0]] * batch), RANGES, 5,
             torch.Generator().manual_seed(0))
    # one batched call per step, plus one for the last state's view surprise
    assert counting.calls == [("step", batch)] * 5 + [("stay", batch)]


def test_dream_from_frames_batches_and_is_seeded(tiny_wm):
    frames = np.random.default_rng(0).integers(0, 255, (6, 40, 40, 3), dtype=np.uint8)
    poses = np.array([[30.0 * i, 0.0, 1.0 + i] for i in range(6)])
    seen = []
    a = dream_from_frames(tiny_wm, frames, poses, RANGES, n_dreams=10, length=3, seed=4, batch=4,
                          progress=lambda done, total: seen.append((done, total)))
    b = dream_from_frames(tiny_wm, frames, poses, RANGES, n_dreams=10, length=3, seed=4, batch=4)
    assert a.count == 10 and seen == [(4, 10), (8, 10), (10, 10)]
    assert torch.equal(a.actions, b.actions) and torch.equal(a.observations, b.observations)
    # every dream starts at one of the real frames' poses
    starts = {tuple(np.round(p, 4)) for p in a.poses[:, 0].tolist()}
    assert starts <= {tuple(np.round(p, 4)) for p in poses.tolist()}
    stopped = dream_from_frames(tiny_wm, frames, poses, RANGES, n_dreams=10, length=3, batch=4,
                                should_stop=lambda: True)
    assert stopped.count == 4


def test_bad_inputs(tiny_wm):
    with pytest.raises(ValueError, match="length"):
        generate(tiny_wm, states(tiny_wm, 2), np.zeros((2, 3)) + 1, RANGES, 0)
    with pytest.raises(ValueError, match="start_poses"):
        generate(tiny_wm, states(tiny_wm, 2), np.zeros((3, 3)) + 1, RANGES, 2)
    assert len(ACTIONS) == N_ACTIONS == 21
