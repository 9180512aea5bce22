"""Held-out evaluation of a world model, always against the "nothing moves" copy baseline.

- one-step ratio: mean squared latent error of predict(state_i, pose_i, pose_{i+1}) against the
  target state of frame i+1, divided by that of simply copying state_i (a model that has learned
  nothing about motion scores 1; lower is better).
- rollout ratio by horizon h: the same for h chained predictions from a real frame's state.
- pose probe R^2: ridge regression (closed form) from pooled states (token mean and std plus a 2x2
  grid of regional means) to the normalised pose, fitted on probe-training frames and scored on disjoint
  held-out frames; a collapsed encoder scores ~0. By default the probe fits on the training sweep
  and scores the held-out sweep; `probe_train` / `probe_test` give it its own sets (the bench's
  protocol: random views of the same site, see docs/worldmodel.md).
- surprise Spearman: rank correlation between each surprise head's prediction and the actual error
  of held-out one-step transitions.
All evaluation runs on the target-space states the dreamer and the agent use.
"""

from __future__ import annotations

import numpy as np
import torch

from services.worldmodel.data import FrameDataset
from shared.models.surprise import per_transition_error
from shared.models.world_model import WorldModel, normalise_poses


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


def _sq_err(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared error over tokens and channels."""
    return (a - b).pow(2).flatten(1).mean(dim=1)


@torch.no_grad()
def rollout_errors(model: WorldModel, states: torch.Tensor, poses: torch.Tensor,
                   rounds: list[np.ndarray], max_horizon: int) -> dict[int, tuple[float, float]]:
    """{h: (mean model error, mean copy-baseline error)} over every start of every round that
    has h more frames. All starts roll out together; finished ones are carried but not scored."""
    starts = [(r, k) for r in rounds for k in range(len(r) - 1)]
    if not starts:
        raise ValueError("no held-out round has two frames")
    first = torch.tensor([r[k] for r, k in starts])
    remaining = torch.tensor([len(r) - 1 - k for r, k in starts])
    state = states[first]
    out = {}
    for h in range(1, max_horizon + 1):
        alive = remaining >= h
        if not alive.any():
            break
        cur = torch.tensor([r[min(k + h - 1, len(r) - 1)] for r, k in starts])
        nxt = torch.tensor([r[min(k + h, len(r) - 1)] for r, k in starts])
        state, _ = model.predict(state, poses[cur], poses[nxt])
        truth = states[nxt]
        out[h] = (_sq_err(state, truth)[alive].mean().item(),
                  _sq_err(states[first], truth)[alive].mean().item())
    return out


def ridge_probe_r2(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                   test_y: np.ndarray, lambdas=(1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3)) -> dict:
    """Closed-form ridge; lambda chosen by 5-fold CV on the training set. R^2 per output and mean."""
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    xtr, xte = (train_x - mu) / sd, (test_x - mu) / sd
    ymu = train_y.mean(0)

    def solve(x, y, lam):
        a = x.T @ x + lam * len(x) * np.eye(x.shape[1])
        return np.linalg.solve(a, x.T @ (y - ymu))

    # Contiguous folds: frames come round by round, and neighbouring frames of one round are
    # near-duplicates, so interleaved folds would leak and pick too little regularisation.
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
    w = solve(xtr, train_y, best)
    pred = xte @ w + ymu
    ss_res = ((pred - test_y) ** 2).sum(0)
    ss_tot = ((test_y - test_y.mean(0)) ** 2).sum(0) + 1e-12
    r2 = 1.0 - ss_res / ss_tot
    return {"r2": float(r2.mean()), "r2_per_output": [float(v) for v in r2], "lambda": best}


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


@torch.no_grad()
def evaluate(model: WorldModel, train: FrameDataset, held_out: FrameDataset,
             max_horizon: int = 10, probe_train: FrameDataset | None = None,
             probe_test: FrameDataset | None = None) -> dict:
    """All held-out figures as a JSON-ready dict. The probe fits on `probe_train` (default: the
    training sweep) and scores `probe_test` (default: the held-out sweep)."""
    model.eval()
    s_test = encode_dataset(model, held_out)
    p_test = normalise_poses(np.asarray(held_out.poses, dtype=np.float64), held_out.ranges)
    rounds = held_out.rounds()
    roll = rollout_errors(model, s_test, p_test, rounds, max_horizon)
    one_model, one_copy = roll[1]

    # Surprise vs actual error on every held-out one-step transition.
    src = torch.tensor([r[k] for r in rounds for k in range(len(r) - 1)])
    dst = torch.tensor([r[k + 1] for r in rounds for k in range(len(r) - 1)])
    pred, _ = model.predict(s_test[src], p_test[src], p_test[dst])
    actual = per_transition_error(pred[:, None], s_test[dst][:, None])[:, 0]
    heads = model.surprise_all(s_test[src], p_test[src], p_test[dst])
    surprise = {name: spearman(v.numpy(), actual.numpy()) for name, v in heads.items()}

    fit_set = probe_train if probe_train is not None else train
    s_fit = encode_dataset(model, fit_set)
    p_fit = normalise_poses(np.asarray(fit_set.poses, dtype=np.float64), fit_set.ranges)
    if probe_test is not None:
        s_score = encode_dataset(model, probe_test)
        p_score = normalise_poses(np.asarray(probe_test.poses, dtype=np.float64), probe_test.ranges)
    else:
        s_score, p_score = s_test, p_test
    probe = ridge_probe_r2(pooled_features(s_fit), p_fit.numpy(), pooled_features(s_score),
                           p_score.numpy())
    return {
        "one_step_ratio": one_model / one_copy,
        "rollout_ratio": {str(h): m / c for h, (m, c) in sorted(roll.items())},
        "probe_r2": probe["r2"],
        "probe_r2_per_output": dict(zip(["sin_pan", "cos_pan", "tilt", "log_zoom"],
                                        probe["r2_per_output"], strict=True)),
        "surprise_spearman": surprise,
        "one_step_error": one_model, "one_step_copy_error": one_copy,
        "held_out_transitions": len(src),
        "probe_lambda": probe["lambda"],
        "probe_frames": {"fit": len(fit_set), "score": len(s_score)},
    }
