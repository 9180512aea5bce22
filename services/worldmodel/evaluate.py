"""Held-out evaluation of a world model, always against the "nothing moves" copy baseline.

- one-step ratio: mean squared latent error of predict(state_i, pose_i, pose_{i+1}, dt) against
  the target state of frame i+1, divided by that of simply copying state_i (a model that has
  learned nothing about motion scores 1; lower is better); per zone kind when the held-out
  frames' kind fractions are given (`probes.ratio_by_kind`, fraction-weighted).
- rollout ratio by horizon h: the same for h chained predictions from a real frame's state.
- surprise Spearman: rank correlation between each surprise head's prediction and the actual error
  of held-out one-step transitions.
- action recognition (with `action_scale`): on the held-out pairs, which of the 21 actions the
  model's predictions pick (`probes.action_recognition`).
- on probe sets of their own (`probe_fit`, `probe_test`: views of the same site other than the
  training frames, disjoint from each other): the collapse guard (ridge to tilt and log zoom),
  place recognition (k-NN pan error) and inverse dynamics (ridge from the pairs of consecutive
  frames of their rounds to the move). See services/worldmodel/probes.py.
All evaluation runs on the target-space states the dreamer and the agent use; dt of a transition
is the difference of its frames' capture times.
"""

from __future__ import annotations

import numpy as np
import torch

from services.worldmodel.data import FrameDataset
from services.worldmodel.probes import (
    action_recognition,
    collapse_guard,
    inverse_dynamics,
    pixel_tokens,
    place_recognition,
    ratio_by_kind,
    sq_err,
)
from shared.models.surprise import per_transition_error
from shared.models.world_model import WorldModel, normalise_poses
from shared.pose import ActionScale

__all__ = ["cell_errors", "encode_dataset", "evaluate", "kind_figures", "mean_by_kind", "one_step_errors",
           "pixel_probe_figures", "pooled_features", "probe_figures", "rollout_errors", "spearman",
           "transitions"]


@torch.no_grad()
def encode_dataset(model: WorldModel, data: FrameDataset, batch: int = 64) -> torch.Tensor:
    model.eval()
    return torch.cat([model.encode_state(data.frames[i:i + batch])
                      for i in range(0, len(data), batch)])


def pooled_features(states: torch.Tensor, regions: int = 2) -> np.ndarray:
    """(B, N, D) states -> (B, (2 + regions^2) D): the token mean, the token std (how varied the
    view is, which changes with zoom) and the means of a regions x regions grid of cells (coarse
    layout: where in the view things are)."""
    b, n, d = states.shape
    g = round(n ** 0.5)
    feats = [states.mean(1), states.std(1)]
    if regions > 1 and g * g == n and g % regions == 0:
        grid = states.reshape(b, regions, g // regions, regions, g // regions, d)
        feats.append(grid.mean(dim=(2, 4)).reshape(b, regions * regions * d))
    return torch.cat(feats, dim=1).numpy().astype(np.float64)


def transitions(data: FrameDataset) -> tuple[np.ndarray, np.ndarray]:
    """(src, dst) indices of every pair of consecutive frames inside a round."""
    rounds = data.rounds()
    src = np.array([r[k] for r in rounds for k in range(len(r) - 1)], dtype=np.int64)
    dst = np.array([r[k + 1] for r in rounds for k in range(len(r) - 1)], dtype=np.int64)
    return src, dst


@torch.no_grad()
def rollout_errors(model: WorldModel, states: torch.Tensor, poses: torch.Tensor, times: np.ndarray,
                   rounds: list[np.ndarray], max_horizon: int) -> dict[int, tuple[float, float]]:
    """{h: (mean model error, mean copy-baseline error)} over every start of every round that
    has h more frames; each step's dt is the difference of its frames' capture `times` (seconds).
    The starts roll out together, each dropped once its round has no frame left."""
    starts = [(r, k) for r in rounds for k in range(len(r) - 1)]
    if not starts:
        raise ValueError("no held-out round has two frames")
    times = np.asarray(times, dtype=np.float64)
    remaining = np.array([len(r) - 1 - k for r, k in starts])
    alive = np.arange(len(starts))
    first = np.array([r[k] for r, k in starts])
    state = states[first]
    out = {}
    for h in range(1, max_horizon + 1):
        keep = remaining[alive] >= h
        if not keep.any():
            break
        alive, state = alive[keep], state[torch.from_numpy(keep)]
        cur = np.array([starts[i][0][starts[i][1] + h - 1] for i in alive])
        nxt = np.array([starts[i][0][starts[i][1] + h] for i in alive])
        state, _ = model.predict(state, poses[cur], poses[nxt], dt=times[nxt] - times[cur])
        truth = states[nxt]
        out[h] = (sq_err(state, truth).mean().item(), sq_err(states[first[alive]], truth).mean().item())
    return out


@torch.no_grad()
def one_step_errors(model: WorldModel, states: torch.Tensor, poses: torch.Tensor,
                    times: np.ndarray, src: np.ndarray, dst: np.ndarray
                    ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """(predictions (M, N, D), model error (M,), copy-baseline error (M,)) of the one-step
    transitions src[i] -> dst[i]."""
    times = np.asarray(times, dtype=np.float64)
    pred, _ = model.predict(states[src], poses[src], poses[dst], dt=times[dst] - times[src])
    return (pred, sq_err(pred, states[dst]).numpy().astype(np.float64),
            sq_err(states[src], states[dst]).numpy().astype(np.float64))


def kind_figures(model: WorldModel, held_out: FrameDataset, frame_kinds: dict[str, np.ndarray],
                 states: torch.Tensor | None = None) -> dict:
    """{"one_step_ratio", "copy_error", "ratio_by_kind", "copy_error_by_kind", "kind_weight"} on
    the held-out one-step transitions (`copy_error`: the copy baseline's mean error).

    `frame_kinds` gives, per kind, each held-out frame's fraction of the view that shows it, as
    (N,) for whole views (a transition's weight is its target frame's, so its whole error counts
    in proportion) or (N, cells) per state cell in token order (each cell's own error counts with
    its own fraction: the stratum then holds only the cells showing the kind, not the static
    scenery around them). `copy_error_by_kind` is the copy baseline's weighted mean error per kind
    (how much the target states change there: on transitions that hold still, whether the states
    see a zone's motion at all); `kind_weight` sums the weights (views' or cells' worth per kind)."""
    s = encode_dataset(model, held_out) if states is None else states
    p = normalise_poses(np.asarray(held_out.poses, dtype=np.float64), held_out.ranges)
    src, dst = transitions(held_out)
    pred, m, c = one_step_errors(model, s, p, held_out.times, src, dst)
    weights = {k: np.asarray(v, dtype=np.float64)[dst] for k, v in frame_kinds.items()}
    by_kind_m, by_kind_c = m, c
    if any(w.ndim == 2 for w in weights.values()):
        cells = pred.shape[1]
        if any(w.shape != (len(dst), cells) for w in weights.values()):
            raise ValueError(f"per-cell kind fractions must be (frames, {cells}) for this model")
        by_kind_m = cell_errors(pred, s[dst])
        by_kind_c = cell_errors(s[src], s[dst])
    return {"one_step_ratio": float(m.mean() / c.mean()), "copy_error": float(c.mean()),
            "ratio_by_kind": ratio_by_kind(by_kind_m, by_kind_c, weights),
            "copy_error_by_kind": mean_by_kind(by_kind_c, weights),
            "kind_weight": {k: round(float(w.sum()), 2) for k, w in weights.items()}}


def mean_by_kind(err: np.ndarray, weights: dict[str, np.ndarray]) -> dict[str, float | None]:
    """Per kind, sum(w * err) / sum(w) (None for a kind with no weight)."""
    out: dict[str, float | None] = {}
    for kind, w in weights.items():
        total = float(w.sum())
        out[kind] = float((w * err).sum()) / total if total > 0 else None
    return out


def cell_errors(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """(B, N, D) pairs -> (B, N) squared error of each cell, mean over channels."""
    return (a - b).pow(2).mean(dim=-1).numpy().astype(np.float64)


def spearman(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra ** 2).sum() * (rb ** 2).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else 0.0


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank)."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=np.float64)
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    return (sums / counts)[inv]


def probe_figures(model: WorldModel, fit: FrameDataset, test: FrameDataset,
                  place_k: int = 1) -> dict:
    """Collapse guard, place recognition and inverse dynamics of the model's pooled states, fitted
    on `fit` and scored on the disjoint `test` (inverse dynamics on the consecutive pairs of their
    rounds)."""
    return pooled_probe_figures(pooled_features(encode_dataset(model, fit)), fit,
                                pooled_features(encode_dataset(model, test)), test, place_k)


def pixel_probe_figures(fit: FrameDataset, test: FrameDataset, grid: int = 8,
                        place_k: int = 1) -> dict:
    """The same probes on raw pixels (a grid x grid of mean colours as the "tokens"): what the
    views themselves give a linear read-out or a nearest neighbour, the reference for a model's."""
    return pooled_probe_figures(pooled_features(pixel_tokens(fit.frames, grid)), fit,
                                pooled_features(pixel_tokens(test.frames, grid)), test, place_k)


def pooled_probe_figures(f_fit: np.ndarray, fit: FrameDataset, f_test: np.ndarray,
                         test: FrameDataset, place_k: int = 1) -> dict:
    out = {"collapse_r2": collapse_guard(f_fit, fit.poses, f_test, test.poses),
           "place": place_recognition(f_fit, np.asarray(fit.poses)[:, 0], f_test,
                                      np.asarray(test.poses)[:, 0], k=place_k),
           "probe_frames": {"fit": len(fit), "score": len(test)}}
    fit_pairs, test_pairs = transitions(fit), transitions(test)
    if len(fit_pairs[0]) >= 5 and len(test_pairs[0]):
        out["inverse"] = inverse_dynamics(f_fit, fit.poses, fit_pairs, f_test, test.poses, test_pairs)
    return out


@torch.no_grad()
def evaluate(model: WorldModel, held_out: FrameDataset, *, max_horizon: int = 10,
             probe_fit: FrameDataset | None = None, probe_test: FrameDataset | None = None,
             frame_kinds: dict[str, np.ndarray] | None = None,
             action_scale: ActionScale | None = None) -> dict:
    """All held-out figures as a JSON-ready dict. The figures that need more than the held-out
    sweep appear when given their inputs: `probe_fit` and `probe_test` (probe sets), `frame_kinds`
    (per held-out frame, the fraction of each zone kind in view) and `action_scale` (the held-out
    pairs were each reached by one of the 21 actions at this scale)."""
    model.eval()
    s_test = encode_dataset(model, held_out)
    p_test = normalise_poses(np.asarray(held_out.poses, dtype=np.float64), held_out.ranges)
    times = np.asarray(held_out.times, dtype=np.float64)
    roll = rollout_errors(model, s_test, p_test, times, held_out.rounds(), max_horizon)
    one_model, one_copy = roll[1]
    src, dst = transitions(held_out)

    # Surprise vs actual error on every held-out one-step transition.
    pred, m_err, c_err = one_step_errors(model, s_test, p_test, times, src, dst)
    actual = per_transition_error(pred[:, None], s_test[dst][:, None])[:, 0]
    heads = model.surprise_all(s_test[src], p_test[src], p_test[dst], dt=times[dst] - times[src])
    out: dict = {
        "one_step_ratio": one_model / one_copy,
        "rollout_ratio": {str(h): m / c for h, (m, c) in sorted(roll.items())},
        "surprise_spearman": {name: spearman(v.numpy(), actual.numpy()) for name, v in heads.items()},
        "one_step_error": one_model, "one_step_copy_error": one_copy,
        "held_out_transitions": len(src),
    }
    if frame_kinds is not None:
        weights = {k: np.asarray(v, dtype=np.float64)[dst] for k, v in frame_kinds.items()}
        out["ratio_by_kind"] = ratio_by_kind(m_err, c_err, weights)
        out["kind_weight"] = {k: round(float(w.sum()), 2) for k, w in weights.items()}
    if action_scale is not None:
        out["action"] = action_recognition(model, s_test, np.asarray(held_out.poses), times[dst] - times[src],
                                           src, dst, held_out.ranges, action_scale)
    if probe_fit is not None and probe_test is not None:
        out.update(probe_figures(model, probe_fit, probe_test))
    return out
