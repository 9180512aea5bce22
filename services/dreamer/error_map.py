"""Measured surprise: where the world model is actually wrong on this site's real frames.

The learned surprise head predicts a transition's error from the state and the poses; measured in
the curiosity bench it ranks the scene's dynamic zones after one training and loses them after
the next (docs/agent.md). A PTZ camera never moves, so "where is the world model weak?" has a
direct answer that needs no head: run the published model on the real transitions the node
recorded (consecutive frames of a round), measure its error on each, and smooth those errors over
the camera's poses. The error of a transition is modelled as

    error ~= move[action] + view(destination pose)

- `move`: the mean error per action (the geometry of the move: a jump brings new content into
  view wherever the camera points);
- `view`: a Nadaraya-Watson (Gaussian kernel) average of the remaining error over the
  destination poses, with its bandwidth chosen by leave-one-out error; the kernel distance is the
  angle between the two viewing directions plus a weighted log-zoom difference, so it means the
  same at every pan and on every camera. Each transition weighs by the inverse of its action's
  residual variance (a jump's error varies with whatever comes into view; a short move's mostly
  with what changes by itself), and one pseudo-transition at zero residual shrinks the term
  where the camera has seldom looked (no data: no bonus).

The two terms are fitted by backfitting (a few alternations). A dream transition then gets
`move[a_t]` and `view(pose_{t+1})`: the rewards `measured` (their sum) and `measured_view`
(the view term alone) of `shared.dreams.REWARDS`. Real transitions carry no action index, so each
is matched to the action whose wrapped/clamped result lands nearest its destination.

Measured in the curiosity bench (docs/agent.md, session 4), the map is not yet a better reward
than the learned head: one move term per action books the zoom-dependent part of a move's
geometry into the view term at zoomed-in poses. It is an option and a diagnostic, not the default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from services.dreamer.rollout import advance_poses
from shared.models.surprise import per_transition_error
from shared.models.world_model import WorldModel, normalise_poses
from shared.pose import N_ACTIONS, ActionScale, PoseRanges, normalise_batch

# Candidate kernel widths (radians of viewing direction) and log-zoom weights, chosen by
# leave-one-out error on the measured transitions.
BANDWIDTHS = tuple(math.radians(d) for d in (2.0, 4.0, 8.0, 16.0, 32.0))
ZOOM_WEIGHTS = (0.1, 0.3, 1.0)  # radians per unit of natural-log zoom
BACKFIT_ROUNDS = 3
MOVE_PRIOR = 3.0  # pseudo-transitions at the overall mean in each action's move term
VIEW_PRIOR = 1.0  # pseudo-transitions (of typical weight) at zero residual in the view term


class ErrorMapError(ValueError):
    """Real frames from which no error map can be fitted (no transition)."""


@dataclass(frozen=True)
class ErrorMap:
    """The fitted model (see the module docstring). Arrays are float64."""

    move: np.ndarray        # (N_ACTIONS,) mean error per action
    anchors: np.ndarray     # (M, 4) destination poses: unit view direction (3) + log zoom
    residuals: np.ndarray   # (M,) measured error minus its move term
    precision: np.ndarray   # (M,) weight of each transition in the view term
    bandwidth: float        # kernel width, radians
    zoom_weight: float      # radians per unit of log zoom
    loo_error: float        # leave-one-out weighted mean squared error of the view term
    baseline_error: float   # the same for a view term of 0 (the move term alone)

    @property
    def transitions(self) -> int:
        return int(len(self.residuals))

    def view(self, poses) -> np.ndarray:
        """(K, 3) raw poses -> (K,) the view term there."""
        q = _embed(np.asarray(poses, dtype=np.float64).reshape(-1, 3), self.zoom_weight)
        out = np.empty(len(q))
        for i in range(0, len(q), 1024):  # bounded memory: 1024 x M weights at a time
            k = _kernel(_sq_dists(q[i:i + 1024], self.anchors), self.bandwidth)
            out[i:i + 1024] = _smooth(k, self.precision, self.residuals)
        return out

    def summary(self) -> dict:
        return {"transitions": self.transitions,
                "bandwidth_deg": round(math.degrees(self.bandwidth), 2),
                "zoom_weight": self.zoom_weight, "loo_mse": self.loo_error,
                "move_only_mse": self.baseline_error,
                "move_min": float(self.move.min()), "move_max": float(self.move.max())}


def _embed(poses: np.ndarray, zoom_weight: float) -> np.ndarray:
    """Raw (pan, tilt, zoom) degrees -> (unit viewing direction, weighted log zoom)."""
    pan, tilt = np.radians(poses[:, 0]), np.radians(poses[:, 1])
    direction = np.stack([np.cos(tilt) * np.cos(pan), np.cos(tilt) * np.sin(pan), np.sin(tilt)], 1)
    return np.concatenate([direction, zoom_weight * np.log(np.maximum(poses[:, 2:3], 1e-9))], 1)


def _sq_dists(q: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """(Q, M) squared distances without the (Q, M, 4) intermediate."""
    d2 = (q ** 2).sum(1)[:, None] + (anchors ** 2).sum(1)[None, :] - 2.0 * q @ anchors.T
    return np.maximum(d2, 0.0)


def _kernel(d2: np.ndarray, bandwidth: float) -> np.ndarray:
    return np.exp(-0.5 * d2 / bandwidth ** 2)


def _move_means(errors: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Mean per action, shrunk towards the mean over all by MOVE_PRIOR pseudo-transitions (an
    action seen once says little; one never seen gets the overall mean)."""
    sums = np.bincount(actions, weights=errors, minlength=N_ACTIONS)
    counts = np.bincount(actions, minlength=N_ACTIONS)
    return (sums + MOVE_PRIOR * errors.mean()) / (counts + MOVE_PRIOR)


def _precisions(residuals: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Per-transition weight 1 / (its action's residual variance), relative to the overall one:
    a jump's error varies with whatever comes into view, a short move's mostly with what changes
    by itself, so short moves say more about a view. Variances shrink like the move means."""
    overall = max(float(np.mean(residuals ** 2)), 1e-18)
    ss = np.bincount(actions, weights=residuals ** 2, minlength=N_ACTIONS)
    counts = np.bincount(actions, minlength=N_ACTIONS)
    var = (ss + MOVE_PRIOR * overall) / (counts + MOVE_PRIOR)
    return overall / np.maximum(var[actions], 1e-18)


def _smooth(k: np.ndarray, precision: np.ndarray, residuals: np.ndarray) -> np.ndarray:
    """Precision-weighted kernel average with VIEW_PRIOR pseudo-transitions at zero residual (a
    view with little data nearby gets no bonus and no penalty)."""
    w = k * precision[None, :]
    return (w @ residuals) / (w.sum(axis=1) + VIEW_PRIOR)


def fit_error_map(dest_poses, actions, errors, *, bandwidths=BANDWIDTHS,
                  zoom_weights=ZOOM_WEIGHTS) -> ErrorMap:
    """Fit move + view terms to measured errors of real transitions (see the module docstring)."""
    dest = np.asarray(dest_poses, dtype=np.float64).reshape(-1, 3)
    actions = np.asarray(actions, dtype=np.int64).reshape(-1)
    errors = np.asarray(errors, dtype=np.float64).reshape(-1)
    if not (len(dest) == len(actions) == len(errors)):
        raise ValueError("dest_poses, actions and errors must have the same length")
    if len(errors) < 2:
        raise ErrorMapError(f"an error map needs at least 2 measured transitions, got {len(errors)}")
    if not np.isfinite(errors).all() or not np.isfinite(dest).all():
        raise ValueError("measured errors and poses must be finite")
    if ((actions < 0) | (actions >= N_ACTIONS)).any():
        raise ValueError(f"actions must be in 0..{N_ACTIONS - 1}")
    best = None
    for zw in zoom_weights:
        anchors = _embed(dest, zw)
        d2 = _sq_dists(anchors, anchors)
        for bw in bandwidths:
            k = _kernel(d2, bw)
            np.fill_diagonal(k, 0.0)  # leave one out
            view, precision = np.zeros_like(errors), np.ones_like(errors)
            for _ in range(BACKFIT_ROUNDS):
                move = _move_means(errors - view, actions)
                residuals = errors - move[actions]
                precision = _precisions(residuals - view, actions)
                view = _smooth(k, precision, residuals)
            loo = float(np.sum(precision * (residuals - view) ** 2) / np.sum(precision))
            if best is None or loo < best[0]:
                best = (loo, zw, bw, move, anchors, residuals, precision)
    loo, zw, bw, move, anchors, residuals, precision = best
    base = float(np.sum(precision * (errors - move[actions]) ** 2) / np.sum(precision))
    return ErrorMap(move=move, anchors=anchors, residuals=residuals, precision=precision,
                    bandwidth=bw, zoom_weight=zw, loo_error=loo, baseline_error=base)


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
                        max_transitions: int | None = 2000) -> dict[str, np.ndarray]:
    """The model's actual error on every consecutive pair of frames of a round (the most recent
    `max_transitions` when capped). states: (N, T, D) target-space states of the frames in
    capture order; poses (N, 3) raw; round_ids (N,). Returns dest_poses, actions, errors."""
    poses = np.asarray(poses, dtype=np.float64)
    ids = np.asarray(round_ids)
    if len(poses) != states.shape[0] or len(ids) != len(poses):
        raise ValueError("states, poses and round_ids must have the same length")
    src = np.flatnonzero(ids[:-1] == ids[1:]) if len(ids) > 1 else np.zeros(0, np.int64)
    if max_transitions is not None and len(src) > max_transitions:
        src = src[-max_transitions:]
    if len(src) == 0:
        raise ErrorMapError("no round holds two consecutive frames: nothing to measure")
    dst = src + 1
    model.eval()
    errors = []
    for i in range(0, len(src), batch):
        s, d = src[i:i + batch], dst[i:i + batch]
        pred, _ = model.predict(states[s], normalise_poses(poses[s], ranges),
                                normalise_poses(poses[d], ranges))
        errors.append(per_transition_error(pred[:, None].float(),
                                           states[d][:, None].float())[:, 0].double().cpu())
    return {"dest_poses": poses[dst], "actions": infer_actions(poses[src], poses[dst], ranges, scale),
            "errors": torch.cat(errors).numpy()}


def error_map_from_frames(model: WorldModel, states: torch.Tensor, poses, round_ids,
                          ranges: PoseRanges, scale: ActionScale,
                          max_transitions: int | None = 2000) -> ErrorMap:
    """Measure the model on the real transitions and fit the map in one call."""
    m = measure_transitions(model, states, poses, round_ids, ranges, scale,
                            max_transitions=max_transitions)
    return fit_error_map(m["dest_poses"], m["actions"], m["errors"])
