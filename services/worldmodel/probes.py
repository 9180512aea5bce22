"""Probes of what an action-conditioned world model knows, each scored on data it was not fit on.

- action recognition: which of the 21 actions explains an observed transition best, by the
  model's own predictions (top-1 accuracy; chance 1/21);
- inverse dynamics: ridge from a pair's pooled states to the move between them (R^2);
- collapse guard: ridge from pooled states to tilt and log zoom (R^2 each; a collapsed encoder
  scores ~0). Pan is left out: absolute pan needs place recognition, not a linear read-out;
- place recognition: nearest neighbours over pooled states, median pan error in degrees;
- one-step ratio per zone kind: model error over copy-baseline error, each transition weighted by
  the fraction of its target view that shows the kind.

Every function takes plain arrays or tensors, so that tests can feed synthetic cases whose answer
is known, and any object with `predict(state, pose_from, pose_to, dt=...)` as the model.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from shared.pose import N_ACTIONS, ActionScale, Pose, PoseRanges, apply_action


class Predicts(Protocol):
    def predict(self, state: torch.Tensor, pose_from, pose_to, ranges: PoseRanges | None = None,
                *, dt) -> tuple[torch.Tensor, torch.Tensor]: ...


def sq_err(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared error over tokens and channels."""
    return (a - b).pow(2).flatten(1).mean(dim=1)


def wrapped_deg(d: np.ndarray) -> np.ndarray:
    """Angle differences in degrees -> [-180, 180)."""
    return (np.asarray(d, dtype=np.float64) + 180.0) % 360.0 - 180.0


def pose_deltas(poses: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(M, 3) moves between raw poses: (d pan wrapped to [-180, 180), d tilt, d log zoom)."""
    p = np.asarray(poses, dtype=np.float64)
    return np.stack([wrapped_deg(p[dst, 0] - p[src, 0]), p[dst, 1] - p[src, 1],
                     np.log(p[dst, 2] / p[src, 2])], axis=1)


def candidate_poses(pose: Pose, ranges: PoseRanges, scale: ActionScale) -> np.ndarray:
    """(21, 3) raw poses that each action leads to from `pose`."""
    return np.array([apply_action(pose, a, ranges, scale).as_tuple() for a in range(N_ACTIONS)])


def same_pose(a: np.ndarray, b: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Element-wise pose equality (..., 3) with pan compared on the circle."""
    return ((np.abs(wrapped_deg(a[..., 0] - b[..., 0])) <= tol)
            & (np.abs(a[..., 1] - b[..., 1]) <= tol)
            & (np.abs(np.log(a[..., 2] / b[..., 2])) <= tol))


@torch.no_grad()
def action_recognition(model: Predicts, states: torch.Tensor, poses: np.ndarray, dts: np.ndarray,
                       src: np.ndarray, dst: np.ndarray, ranges: PoseRanges,
                       scale: ActionScale, batch: int = 16, per_pair: bool = False) -> dict:
    """Top-1 action recognition on the pairs (src[i] -> dst[i]) of raw `poses` and `states`.

    Each pair's dt (seconds) is given to every candidate. A pick counts as a hit when its pose
    equals the observed target pose: candidates that clamp to the same pose cannot be told apart.
    `chance_with_ties` is what guessing uniformly would score given those ties. With `per_pair`,
    `hits` holds each pair's verdict (bool array), e.g. to score strata of the pairs.
    """
    poses = np.asarray(poses, dtype=np.float64)
    hits, tie_chance = [], []
    for lo in range(0, len(src), batch):
        s, d = np.asarray(src[lo:lo + batch]), np.asarray(dst[lo:lo + batch])
        cands = np.stack([candidate_poses(Pose(*poses[i]), ranges, scale) for i in s])  # (b, 21, 3)
        b = len(s)
        rep = states[torch.as_tensor(s)].repeat_interleave(N_ACTIONS, dim=0)
        pose_from = np.repeat(poses[s], N_ACTIONS, axis=0)
        dt = np.repeat(np.asarray(dts[lo:lo + batch], dtype=np.float64), N_ACTIONS)
        pred, _ = model.predict(rep, pose_from, cands.reshape(-1, 3), ranges, dt=dt)
        target = states[torch.as_tensor(d)].repeat_interleave(N_ACTIONS, dim=0)
        dist = sq_err(pred.float().cpu(), target.float().cpu()).reshape(b, N_ACTIONS).numpy()
        pick = dist.argmin(axis=1)
        correct = same_pose(cands, poses[d][:, None, :])  # (b, 21): candidates as good as the truth
        hits.append(correct[np.arange(b), pick])
        tie_chance.append(correct.mean(axis=1))
    hit = np.concatenate(hits) if hits else np.zeros(0, bool)
    out = {"top1": float(hit.mean()) if len(hit) else float("nan"), "chance": 1.0 / N_ACTIONS,
           "chance_with_ties": float(np.concatenate(tie_chance).mean()) if hits else float("nan"),
           "pairs": len(hit)}
    return {**out, "hits": hit} if per_pair else out


def ridge_fit_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                      lambdas=(1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3)) -> tuple[np.ndarray, float]:
    """Closed-form ridge on standardised inputs, lambda by 5-fold CV on the training set.

    Returns (predictions for test_x, lambda). Contiguous folds: frames come round by round and
    neighbouring frames of one round are near-duplicates, so interleaved folds would leak and
    pick too little regularisation.
    """
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    xtr, xte = (train_x - mu) / sd, (test_x - mu) / sd
    ymu = train_y.mean(0)

    def solve(x, y, lam):
        # The dual form when there are more features than samples: same solution, smaller system.
        if x.shape[1] > x.shape[0]:
            k = x @ x.T + lam * len(x) * np.eye(len(x))
            return x.T @ np.linalg.solve(k, y - ymu)
        a = x.T @ x + lam * len(x) * np.eye(x.shape[1])
        return np.linalg.solve(a, x.T @ (y - ymu))

    folds = np.arange(len(xtr)) * 5 // len(xtr)
    best, best_err = lambdas[0], np.inf
    for lam in lambdas:
        err = 0.0
        for f in range(5):
            tr, va = folds != f, folds == f
            w = solve(xtr[tr], train_y[tr], lam)
            err += ((xtr[va] @ w + ymu - train_y[va]) ** 2).sum()
        if err < best_err:
            best, best_err = lam, err
    return xte @ solve(xtr, train_y, best) + ymu, best


def r2_scores(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """R^2 per output column (1 - residual / total sum of squares about the truth's mean)."""
    ss_res = ((pred - truth) ** 2).sum(0)
    ss_tot = ((truth - truth.mean(0)) ** 2).sum(0) + 1e-12
    return 1.0 - ss_res / ss_tot


def ridge_probe_r2(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                   test_y: np.ndarray) -> dict:
    """Ridge fitted on (train_x, train_y), scored on (test_x, test_y): R^2 per output and mean."""
    pred, lam = ridge_fit_predict(train_x, train_y, test_x)
    r2 = r2_scores(pred, test_y)
    return {"r2": float(r2.mean()), "r2_per_output": [float(v) for v in r2], "lambda": lam}


def pixel_tokens(frames: np.ndarray, grid: int = 8) -> torch.Tensor:
    """uint8 (N, H, W, 3) frames -> (N, grid^2, 3) mean colours in [0, 1] of a grid x grid of
    cells, row-major: raw pixels laid out like a state, for the probes' pixel reference."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    cells = torch.nn.functional.adaptive_avg_pool2d(x, grid)
    return cells.flatten(2).transpose(1, 2).contiguous()


def pair_features(pooled: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(z_i, z_j, z_j - z_i) of pooled states for each pair (src[i], dst[i])."""
    zi, zj = pooled[src], pooled[dst]
    return np.concatenate([zi, zj, zj - zi], axis=1)


def inverse_dynamics(fit_pooled: np.ndarray, fit_poses: np.ndarray, fit_pairs: tuple,
                     test_pooled: np.ndarray, test_poses: np.ndarray, test_pairs: tuple) -> dict:
    """Ridge from a pair's (z_i, z_j, z_j - z_i) to its (d pan, d tilt, d log zoom), fitted on
    `fit_pairs` (src, dst) and scored on the disjoint `test_pairs`."""
    probe = ridge_probe_r2(pair_features(fit_pooled, *fit_pairs), pose_deltas(fit_poses, *fit_pairs),
                           pair_features(test_pooled, *test_pairs),
                           pose_deltas(test_poses, *test_pairs))
    per = dict(zip(("d_pan", "d_tilt", "d_log_zoom"), probe["r2_per_output"], strict=True))
    return {"r2": probe["r2"], "r2_per_output": per, "lambda": probe["lambda"],
            "pairs": {"fit": len(fit_pairs[0]), "score": len(test_pairs[0])}}


def tilt_log_zoom(poses: np.ndarray) -> np.ndarray:
    p = np.asarray(poses, dtype=np.float64)
    return np.stack([p[:, 1], np.log(p[:, 2])], axis=1)


def collapse_guard(fit_pooled: np.ndarray, fit_poses: np.ndarray, test_pooled: np.ndarray,
                   test_poses: np.ndarray) -> dict:
    """R^2 of ridge read-outs of tilt and log zoom from pooled states (raw poses (N, 3))."""
    probe = ridge_probe_r2(fit_pooled, tilt_log_zoom(fit_poses), test_pooled,
                           tilt_log_zoom(test_poses))
    tilt, log_zoom = probe["r2_per_output"]
    return {"tilt": tilt, "log_zoom": log_zoom, "lambda": probe["lambda"]}


def place_recognition(fit_pooled: np.ndarray, fit_pan: np.ndarray, test_pooled: np.ndarray,
                      test_pan: np.ndarray, k: int = 1) -> dict:
    """k-NN (Euclidean on the pooled features as they are) from each test state to the fit set;
    the predicted pan is the circular mean of the neighbours' pans. Returns the median wrap-aware
    pan error in degrees (a guess scores 90 on average). Not standardised: the states are
    layer-normed tokens, so features share a scale, and standardising would blow up the
    near-constant ones (noise) to the weight of the informative ones."""
    mu = fit_pooled.mean(0)
    a, b = fit_pooled - mu, test_pooled - mu
    d2 = (b ** 2).sum(1)[:, None] - 2.0 * b @ a.T + (a ** 2).sum(1)[None, :]
    k = max(1, min(k, len(a)))
    nn = np.argsort(d2, axis=1, kind="stable")[:, :k]
    ang = np.radians(np.asarray(fit_pan, dtype=np.float64)[nn])
    pred = np.degrees(np.arctan2(np.sin(ang).mean(1), np.cos(ang).mean(1)))
    err = np.abs(wrapped_deg(pred - np.asarray(test_pan, dtype=np.float64)))
    return {"median_pan_err_deg": float(np.median(err)), "mean_pan_err_deg": float(err.mean()),
            "k": k, "chance_deg": 90.0, "views": {"fit": len(a), "score": len(b)}}


def ratio_by_kind(model_err: np.ndarray, copy_err: np.ndarray,
                  fractions: dict[str, np.ndarray]) -> dict[str, float | None]:
    """Per kind: sum(w * model error) / sum(w * copy error), w the fraction of each transition's
    target view that shows the kind (fraction-weighted, so every transition counts for every kind
    in its view, in proportion). The errors and weights may also be per cell ((M, N) each): then
    every cell counts with its own fraction. A kind with no weight gets None."""
    m, c = np.asarray(model_err, np.float64), np.asarray(copy_err, np.float64)
    out: dict[str, float | None] = {}
    for kind, w in fractions.items():
        den = float((np.asarray(w, np.float64) * c).sum())
        out[kind] = float((np.asarray(w, np.float64) * m).sum()) / den if den > 0 else None
    return out
