"""Measured surprise: where the world model is actually wrong on this site's real frames.

The learned surprise head predicts a transition's error from the state and the poses; measured in
the curiosity bench it ranks the scene's dynamic zones after one training and loses them after
the next (docs/agent.md). A PTZ camera never moves, so "where is the world model weak?" has a
direct answer that needs no head: run the published model on the real transitions the node
recorded (consecutive frames of a round, each predicted for the seconds between its frames'
capture times, as the trainer pairs them) and measure its error, token by token. The error of a
transition is modelled as

    error ~= move[action] + view(destination pose)

- `view`: the view atlas (services.dreamer.view_atlas): the measured error of every token of the
  transitions that held the view still (the hold frames of sweeps and navigation; with fewer than
  MIN_HOLDS of them, every token held within a cell of its place over any move), binned by the
  direction of the scene it shows, smoothed, and read back as the mean over the directions a view
  at any pose shows. It says
  which parts of the *scene* the model predicts badly, at every zoom, also at poses the camera
  never held;
- `move`: the mean per action of what the view term leaves (the geometry of the move: a jump
  brings new content into view wherever the camera points), shrunk towards the overall mean.

A dream transition then gets the move term of the move it made (a clamped action counts as what
it did) and `view(pose_{t+1})`: the rewards `measured` (their
sum) and `measured_view` (the view term alone) of `shared.dreams.REWARDS`. Real transitions carry
no action index, so each is matched to the action whose wrapped/clamped result lands nearest its
destination.

The view term is an atlas of the views' own errors rather than a kernel average of
whole-transition errors over destination poses, because such an average books the zoom-dependent
part of a move's geometry into the view term at zoomed-in poses and knows only the poses the
camera has held (docs/agent.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from services.dreamer.rollout import advance_poses
from services.dreamer.view_atlas import ViewAtlas, fit_view_atlas, held_in_place, holds
from shared.models.world_model import WorldModel, normalise_poses
from shared.pose import N_ACTIONS, ActionScale, PoseRanges, normalise_batch

MOVE_PRIOR = 3.0  # pseudo-transitions at the overall mean in each action's move term
# The atlas is fitted on holds alone once the frames hold this many (rounds recorded with hold
# frames give one per move); below it, on the tokens held within one cell over any move.
MIN_HOLDS = 32


class ErrorMapError(ValueError):
    """Real frames from which no error map can be fitted (no transition, or none that held any
    content in place)."""


@dataclass(frozen=True)
class ErrorMap:
    """The fitted model (see the module docstring)."""

    move: np.ndarray       # (N_ACTIONS,) mean error per action beyond the view term
    atlas: ViewAtlas       # the view term
    transitions: int       # measured transitions it was fitted on
    explained: float       # share of the errors' variance that move + view explain (in sample)
    atlas_source: str = "in_place"  # "holds" (whole views held still) or "in_place" (see fit)
    holds: int = 0         # transitions among them that held the view still

    def view(self, poses) -> np.ndarray:
        """(K, 3) raw poses -> (K,) the view term there."""
        return self.atlas.view(poses)

    def move_between(self, pose_from, pose_to, ranges: PoseRanges,
                     scale: ActionScale) -> np.ndarray:
        """(K, 3) x2 raw poses -> (K,) the move term of the action that takes each pose_from
        nearest its pose_to (after wrap/clamp): the move actually made, as for real frames."""
        return self.move[infer_actions(pose_from, pose_to, ranges, scale)]

    def summary(self) -> dict:
        return {"transitions": self.transitions, "tokens": self.atlas.tokens,
                "explained": round(self.explained, 4),
                "atlas_source": self.atlas_source, "holds": self.holds,
                "observed_fraction": round(self.atlas.observed_fraction(), 4),
                "token_error_mean": self.atlas.mean,
                "move_min": float(self.move.min()), "move_max": float(self.move.max())}


def _move_means(errors: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Mean per action, shrunk towards the mean over all by MOVE_PRIOR pseudo-transitions (an
    action seen once says little; one never seen gets the overall mean)."""
    sums = np.bincount(actions, weights=errors, minlength=N_ACTIONS)
    counts = np.bincount(actions, minlength=N_ACTIONS)
    return (sums + MOVE_PRIOR * errors.mean()) / (counts + MOVE_PRIOR)


def fit_error_map(source_poses, dest_poses, actions, errors, token_errors,
                  hfov_deg: float) -> ErrorMap:
    """Fit the view atlas and the move term to measured real transitions: source and destination
    poses (M, 3) raw, actions (M,), errors (M,) per transition and token_errors (M, N) per token
    of the destination frame (N = grid * grid, row-major)."""
    src = np.asarray(source_poses, dtype=np.float64).reshape(-1, 3)
    dest = np.asarray(dest_poses, dtype=np.float64).reshape(-1, 3)
    actions = np.asarray(actions, dtype=np.int64).reshape(-1)
    errors = np.asarray(errors, dtype=np.float64).reshape(-1)
    tokens = np.asarray(token_errors, dtype=np.float64)
    if not (len(src) == len(dest) == len(actions) == len(errors) == len(tokens)):
        raise ValueError("source_poses, dest_poses, actions, errors and token_errors must have "
                         "the same length")
    if len(errors) < 2:
        raise ErrorMapError(f"an error map needs at least 2 measured transitions, got {len(errors)}")
    if not (np.isfinite(errors).all() and np.isfinite(tokens).all() and np.isfinite(src).all()
            and np.isfinite(dest).all()):
        raise ValueError("measured errors and poses must be finite")
    if ((actions < 0) | (actions >= N_ACTIONS)).any():
        raise ValueError(f"actions must be in 0..{N_ACTIONS - 1}")
    if tokens.ndim != 2:
        raise ValueError("token_errors must be (M, N)")
    grid = round(np.sqrt(tokens.shape[1]))
    still = holds(src, dest, hfov_deg, grid)
    if still.sum() >= MIN_HOLDS:
        # Only what the scene did while the camera held still: any shift, even under a cell,
        # leaves the warp's sub-cell error on textured static ground, which outranked the
        # dynamic zones where the agent looked for the atlas's peaks (docs/agent.md).
        source, held = "holds", np.repeat(still[:, None], tokens.shape[1], axis=1)
    else:
        source, held = "in_place", held_in_place(src, dest, hfov_deg, grid)
    if not held.any():
        raise ErrorMapError("no measured token shows content the camera held in place before its "
                            "move (every transition moved too far)")
    atlas = fit_view_atlas(dest, tokens, held, hfov_deg)
    view = atlas.view(dest)
    move = _move_means(errors - view, actions)
    residual = errors - move[actions] - view
    explained = 1.0 - float(residual.var() / max(errors.var(), 1e-18))
    return ErrorMap(move=move, atlas=atlas, transitions=len(errors), explained=explained,
                    atlas_source=source, holds=int(still.sum()))


def infer_actions(pose_from: np.ndarray, pose_to: np.ndarray, ranges: PoseRanges,
                  scale: ActionScale) -> np.ndarray:
    """(M, 3) x2 raw poses -> (M,) the action whose wrapped/clamped result is nearest pose_to,
    compared as normalised poses (sin/cos pan handles the wrap)."""
    m = len(pose_from)
    src = torch.from_numpy(np.repeat(np.asarray(pose_from, np.float64), N_ACTIONS, axis=0))
    cand = advance_poses(src, torch.arange(N_ACTIONS).repeat(m), ranges, scale).numpy()
    cand = normalise_batch(cand, ranges).reshape(m, N_ACTIONS, -1)
    to = normalise_batch(np.asarray(pose_to, np.float64), ranges)[:, None, :]
    return ((cand - to) ** 2).sum(-1).argmin(axis=1)


@torch.no_grad()
def measure_transitions(model: WorldModel, states: torch.Tensor, poses, round_ids,
                        ranges: PoseRanges, scale: ActionScale, batch: int = 64,
                        max_transitions: int | None = 2000, *, times) -> dict[str, np.ndarray]:
    """The model's actual error on every consecutive pair of frames of a round (the most recent
    `max_transitions` when capped). states: (N, T, D) target-space states of the frames in
    capture order; poses (N, 3) raw; round_ids (N,); times (N,) capture seconds (each pair is
    predicted for the seconds between its frames). Returns sources (M,) (each pair's first
    frame; the second is the next), source_poses, dest_poses, actions, dt, errors (M,) (mean
    smooth-L1 over the tokens: the WM's own loss), token_errors (M, T) and copy_errors (M,)
    (the same loss of the copy baseline, "nothing changes": the scale of this model's space at
    each transition)."""
    poses = np.asarray(poses, dtype=np.float64)
    ids = np.asarray(round_ids)
    times = np.asarray(times, dtype=np.float64)
    if len(poses) != states.shape[0] or len(ids) != len(poses) or times.shape != (len(poses),):
        raise ValueError("states, poses, round_ids and times must have the same length")
    if not np.isfinite(times).all():
        raise ValueError("times must be finite")
    src = np.flatnonzero(ids[:-1] == ids[1:]) if len(ids) > 1 else np.zeros(0, np.int64)
    if max_transitions is not None and len(src) > max_transitions:
        src = src[-max_transitions:]
    if len(src) == 0:
        raise ErrorMapError("no round holds two consecutive frames: nothing to measure")
    dst = src + 1
    dt = times[dst] - times[src]
    model.eval()
    tokens, copies = [], []
    for i in range(0, len(src), batch):
        s, d = src[i:i + batch], dst[i:i + batch]
        pred, _ = model.predict(states[s], normalise_poses(poses[s], ranges),
                                normalise_poses(poses[d], ranges), dt=dt[i:i + batch])
        target = states[d].float().to(pred.device)
        tokens.append(F.smooth_l1_loss(pred.float(), target,
                                       reduction="none").mean(-1).double().cpu())
        copies.append(F.smooth_l1_loss(states[s].float().to(pred.device), target,
                                       reduction="none").mean((-1, -2)).double().cpu())
    token_errors = torch.cat(tokens).numpy()
    return {"sources": src, "source_poses": poses[src], "dest_poses": poses[dst],
            "actions": infer_actions(poses[src], poses[dst], ranges, scale), "dt": dt,
            "errors": token_errors.mean(1), "token_errors": token_errors,
            "copy_errors": torch.cat(copies).numpy()}


def error_map_from_frames(model: WorldModel, states: torch.Tensor, poses, round_ids,
                          ranges: PoseRanges, scale: ActionScale,
                          max_transitions: int | None = 2000, *, times) -> ErrorMap:
    """Measure the model on the real transitions (frames captured at `times` seconds) and fit the
    map in one call."""
    m = measure_transitions(model, states, poses, round_ids, ranges, scale,
                            max_transitions=max_transitions, times=times)
    return fit_error_map(m["source_poses"], m["dest_poses"], m["actions"], m["errors"],
                         m["token_errors"], model.cfg.predictor.warp_hfov_deg)
