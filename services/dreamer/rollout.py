"""Batched imagined rollouts ("dreams") of a world model.

The whole batch advances together: one world-model predictor call per step for every dream (the
original looped over dreams in Python, 4 at a time). Actions are sampled per dream, uniformly over
the 21 actions; poses advance with the same wrap/clamp as `shared.pose.apply_action`, vectorised.
Each step records the agent's observation of the state it is in (`shared.dreams`), the action, the
world model's primary surprise for that transition and its change r_t - r_{t-1} (the original's
reward; 0 at t = 0), and, for every state, its *view surprise*: the surprise of holding the camera
still there, which leaves out the geometry of the move (computed in the same predictor call as the
step: both transitions from a state share its keys and values). Dreams advance time as the camera
does: each step is predicted for the seconds its action takes on the site (`move_times`, measured
from its recorded rounds by shared.move_times; recorded per step as `dt`), the view surprise for
the no-op's seconds (the gap between a view and its hold frame). Given an error map (the model's
measured error on the site's real transitions, services.dreamer.error_map), each dream also
records its move term per action and its view term per pose. The reward variants of
`shared.dreams.REWARDS` are derived from these.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from shared.dreams import Dreams, ObservationSpec, observation_from_states
from shared.models.world_model import WorldModel
from shared.move_times import MoveTimes
from shared.pose import N_ACTIONS, ActionScale, PoseRanges, action_deltas

if TYPE_CHECKING:  # error_map uses advance_poses from here
    from services.dreamer.error_map import ErrorMap

Progress = Callable[[int, int], None]


def advance_poses(poses: torch.Tensor, actions: torch.Tensor, ranges: PoseRanges,
                  scale: ActionScale = ActionScale()) -> torch.Tensor:
    """(B, 3) raw poses after (B,) actions: pan wrapped (or clamped), tilt and zoom clamped.

    Identical to `shared.pose.apply_action` per pose (zoom moves in log steps), in float64.
    """
    deltas = torch.from_numpy(action_deltas(scale).astype(np.float64))[actions.long().cpu()]
    p = poses.detach().cpu().double()
    return clamp_poses(torch.stack([p[:, 0] + deltas[:, 0], p[:, 1] + deltas[:, 1],
                                    p[:, 2] * torch.exp(deltas[:, 2])], dim=1), ranges)


def clamp_poses(poses: torch.Tensor, ranges: PoseRanges) -> torch.Tensor:
    """(B, 3) raw poses wrapped/clamped like `PoseRanges.apply`, float64."""
    p = poses.detach().cpu().double()
    pan = p[:, 0]
    if ranges.pan_wraps:
        span = ranges.pan_max - ranges.pan_min
        pan = ranges.pan_min + torch.remainder(pan - ranges.pan_min, span)
    else:
        pan = pan.clamp(ranges.pan_min, ranges.pan_max)
    tilt = p[:, 1].clamp(ranges.tilt_min, ranges.tilt_max)
    zoom = p[:, 2].clamp(ranges.zoom_min, ranges.zoom_max)
    return torch.stack([pan, tilt, zoom], dim=1)


@torch.no_grad()
def generate(model: WorldModel, start_states: torch.Tensor, start_poses, ranges: PoseRanges,
             length: int, generator: torch.Generator | None = None, *,
             scale: ActionScale = ActionScale(), spec: ObservationSpec = ObservationSpec(),
             actions: torch.Tensor | None = None, progress: Progress | None = None,
             error_map: ErrorMap | None = None, meta: dict | None = None,
             move_times: MoveTimes | None = None,
             progress_map: ErrorMap | None = None) -> Dreams:
    """Roll `B` dreams of `length` steps forward together from real states.

    start_states: (B, N, D) target-space states (`model.encode_state(frames)`); start_poses: (B, 3)
    raw poses of those frames (wrapped/clamped here); actions: optional (B, length) to replay
    given actions instead of sampling them uniformly with `generator`; move_times: the seconds
    of each action (default `MoveTimes.uniform()`: 1 s each, recorded with the dreams).
    """
    if length < 1:
        raise ValueError("dream length must be at least 1")
    b = start_states.shape[0]
    poses = torch.as_tensor(np.asarray(start_poses, dtype=np.float64)
                            if not isinstance(start_poses, torch.Tensor) else start_poses).double()
    if poses.shape != (b, 3):
        raise ValueError(f"start_poses must be ({b}, 3) raw, got {tuple(poses.shape)}")
    poses = clamp_poses(poses, ranges)
    if actions is None:
        actions = torch.randint(N_ACTIONS, (b, length), generator=generator)
    elif tuple(actions.shape) != (b, length):
        raise ValueError(f"actions must be ({b}, {length}), got {tuple(actions.shape)}")
    actions = actions.long()
    move_times = MoveTimes.uniform() if move_times is None else move_times
    dt = torch.from_numpy(move_times.of(actions))  # (B, length) float32
    model.eval()
    state = start_states.float()
    obs = [observation_from_states(state, poses, ranges, spec).cpu()]
    all_poses = [poses]
    surprise, view = [], []
    for t in range(length):
        nxt = advance_poses(poses, actions[:, t], ranges, scale)
        # One call for the whole batch: the move and holding still at the current view.
        state, s, v = model.predict_with_stay(state, poses, nxt, ranges, dt=dt[:, t],
                                              stay_dt=move_times.noop_s)
        poses = nxt
        surprise.append(s.float().cpu())
        view.append(v.float().cpu())
        obs.append(observation_from_states(state, poses, ranges, spec).cpu())
        all_poses.append(poses)
        if progress is not None:
            progress(t + 1, length)
    view.append(model.stay_surprise(state, poses, ranges, dt=move_times.noop_s)  # the last view
                .float().cpu())
    sur = torch.stack(surprise, dim=1)
    delta = torch.zeros_like(sur)
    delta[:, 1:] = sur[:, 1:] - sur[:, :-1]
    pose_seq = torch.stack(all_poses, dim=1)  # (B, L + 1, 3) float64
    measured = {**map_terms(error_map, "measured", pose_seq, ranges, scale),
                **map_terms(progress_map, "progress", pose_seq, ranges, scale)}
    return Dreams(observations=torch.stack(obs, dim=1), poses=pose_seq.float(),
                  actions=actions, surprise=sur, surprise_delta=delta, dt=dt,
                  view_surprise=torch.stack(view, dim=1), spec=spec, ranges=ranges,
                  scale=scale, move_times=move_times, meta=dict(meta or {}), **measured)


def map_terms(emap: ErrorMap | None, prefix: str, pose_seq: torch.Tensor, ranges: PoseRanges,
              scale: ActionScale) -> dict[str, torch.Tensor]:
    """`{prefix}_move` (B, L) and `{prefix}_view` (B, L + 1) of an error map (measured error or
    progress) along the dreamed poses (B, L + 1, 3); {} without a map."""
    if emap is None:
        return {}
    b, length = pose_seq.shape[0], pose_seq.shape[1] - 1
    # The move term of the move the camera made, not of the action asked for: a zoom-in at
    # full zoom or a jump up at the tilt limit is clamped to less (or nothing), and rewarding
    # it as a full move taught agents to press against the limits.
    moves = emap.move_between(pose_seq[:, :-1].reshape(-1, 3).numpy(),
                              pose_seq[:, 1:].reshape(-1, 3).numpy(), ranges, scale)
    return {f"{prefix}_move": torch.from_numpy(moves).float().reshape(b, length),
            f"{prefix}_view": torch.from_numpy(
                emap.view(pose_seq.reshape(-1, 3).numpy())).float().reshape(b, -1)}


@torch.no_grad()
def encode_frames(model: WorldModel, frames, batch: int = 64) -> torch.Tensor:
    """uint8 (N, H, W, 3) frames -> (N, N_tok, D) states, in chunks."""
    model.eval()
    return torch.cat([model.encode_state(frames[i:i + batch]) for i in range(0, len(frames), batch)])


@torch.no_grad()
def dream_from_frames(model: WorldModel, frames, poses, ranges: PoseRanges, *, n_dreams: int,
                      length: int, seed: int = 0, batch: int = 32,
                      scale: ActionScale = ActionScale(), spec: ObservationSpec = ObservationSpec(),
                      states: torch.Tensor | None = None, error_map: ErrorMap | None = None,
                      progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
                      meta: dict | None = None, move_times: MoveTimes | None = None,
                      progress_map: ErrorMap | None = None) -> Dreams:
    """`n_dreams` dreams starting from real frames drawn uniformly (with replacement), `batch`
    dreams advancing together. `states` may be given (precomputed encodings of `frames`);
    `error_map` adds the measured move and view terms, `progress_map` the progress terms
    (services.dreamer.progress), `move_times` the seconds per action
    (see `generate`).
    progress(done_dreams, n_dreams) after each batch; should_stop() is polled between batches
    and ends generation early (what is done is returned; at least one batch is made)."""
    if n_dreams < 1:
        raise ValueError("n_dreams must be at least 1")
    poses = np.asarray(poses, dtype=np.float64)
    n = len(poses) if states is None else states.shape[0]
    if n == 0:
        raise ValueError("no frames to dream from")
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(n, (n_dreams,), generator=gen)
    parts = []
    for i in range(0, n_dreams, batch):
        idx = starts[i:i + batch]
        if states is None:
            s0 = model.encode_state(np.ascontiguousarray(np.asarray(frames)[idx.numpy()]))
        else:
            s0 = states[idx]
        parts.append(generate(model, s0, poses[idx.numpy()], ranges, length, gen, scale=scale,
                              spec=spec, error_map=error_map, move_times=move_times,
                              progress_map=progress_map))
        done = min(i + batch, n_dreams)
        if progress is not None:
            progress(done, n_dreams)
        if should_stop is not None and should_stop() and done < n_dreams:
            break
    out = Dreams.concat(parts)
    out.meta = dict(meta or {})
    return out

