"""Where in the scene the world model is weak: its measured error per viewing direction.

A PTZ camera never moves; the scene around it is a sphere of directions, and every token of a
frame looks at one small patch of that sphere (pinhole geometry: the token's cell centre, the
pose's pan and tilt, and the field of view at its zoom). So a token's prediction error, measured
on real frames, says how well the world model predicts *that part of the scene*. The atlas
accumulates those errors in bins of yaw x pitch, smooths them, and answers for any pose, visited
or not, the mean error over the directions its view would show.

Which tokens count is the caller's choice (the mask of `fit_view_atlas`); the error map
(services.dreamer.error_map) passes the tokens of `holds`, transitions over which the camera held
the whole view still, when the frames have enough of them, else those `held_in_place` within one
cell over any move. Content new to the view is unpredictable wherever the camera points, and
content that slid across the view, even by part of a cell, carries the warp's imprecision (large
on textured static ground); both are the move's geometry, not the scene, and it is that geometry
which fooled the per-transition rewards and the per-pose kernel map before (docs/experiments.md). What
a hold's tokens err by is what the scene did by itself in the meantime (traffic, people, lighting).

Measured against the simulator's ground truth (docs/experiments.md): after one sweep
the atlas of tokens held within a cell ranked random views' dynamic fraction with Spearman 0.38 -
0.66 (seeds 0 - 2), the atlas of holds 0.51 - 0.74, and 0.60 - 0.82 one navigation cycle later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RESOLUTION_DEG = 2.0  # bin size; a `cpu` token spans 7.5 deg at zoom 1 and 0.75 deg at zoom 10
BLUR_BINS = 2.0       # Gaussian smoothing (bins): fills the gaps between a wide view's tokens
FOOTPRINT = 8         # a view's footprint is read at FOOTPRINT x FOOTPRINT directions
HOLD_CELLS = 0.1      # a hold moves no token by more than a tenth of a cell
PRIOR = 1.0           # pseudo-tokens at the overall mean in every bin: no data, no bonus
N_YAW, N_PITCH = round(360.0 / RESOLUTION_DEG), round(180.0 / RESOLUTION_DEG)


def _rotations(poses: np.ndarray) -> np.ndarray:
    """(K, 3) raw poses -> (K, 3, 3) camera-to-world rotations: pitch up by tilt about the camera
    x axis, then yaw right by pan (the simulator's and the predictor's convention: x right, y up,
    z forward; yaw 0 along z, yaw 90 along x)."""
    a, p = np.radians(poses[:, 0]), np.radians(poses[:, 1])
    ca, sa, cp, sp = np.cos(a), np.sin(a), np.cos(p), np.sin(p)
    zero, one = np.zeros_like(a), np.ones_like(a)
    pitch = np.stack([np.stack([one, zero, zero], -1), np.stack([zero, cp, sp], -1),
                      np.stack([zero, -sp, cp], -1)], -2)
    yaw = np.stack([np.stack([ca, zero, sa], -1), np.stack([zero, one, zero], -1),
                    np.stack([-sa, zero, ca], -1)], -2)
    return yaw @ pitch


def _half_width(poses: np.ndarray, hfov_deg: float) -> np.ndarray:
    """(K,) tan of half the field of view at each pose's zoom (square views)."""
    return np.tan(np.radians(hfov_deg / np.maximum(poses[:, 2], 1e-9)) / 2.0)


def view_rays(poses, hfov_deg: float, grid: int) -> np.ndarray:
    """(K, 3) raw poses -> (K, grid * grid, 3) unit world directions of the cell centres of a
    grid x grid view, row-major from the top-left (the order of a ViT's patch tokens)."""
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 3)
    c = (np.arange(grid) + 0.5) / grid * 2.0 - 1.0
    k = _half_width(poses, hfov_deg)[:, None]
    x, y = np.tile(c, grid)[None, :] * k, -np.repeat(c, grid)[None, :] * k
    cam = np.stack([x, y, np.ones_like(x)], -1)
    cam /= np.linalg.norm(cam, axis=-1, keepdims=True)
    return cam @ np.swapaxes(_rotations(poses), 1, 2)


def view_coords(rays: np.ndarray, poses, hfov_deg: float) -> np.ndarray:
    """(K, n, 3) world directions x (K, 3) poses -> (K, n, 2) where direction k, i falls in the
    view at pose k: x right, y down, in half-widths (the view spans -1..1; inf behind it)."""
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 3)
    cam = rays @ _rotations(poses)  # world -> camera: R^T d, batched as d^T R
    k = _half_width(poses, hfov_deg)[:, None]
    z = cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        xy = np.stack([cam[..., 0], -cam[..., 1]], -1) / (k * z)[..., None]
    return np.where((z > 0)[..., None], xy, np.inf)


def cell_coords(grid: int) -> np.ndarray:
    """(grid * grid, 2) cell centres of a view in half-widths (x right, y down), row-major."""
    c = (np.arange(grid) + 0.5) / grid * 2.0 - 1.0
    return np.stack([np.tile(c, grid), np.repeat(c, grid)], -1)


def held_in_place(source_poses, dest_poses, hfov_deg: float, grid: int,
                  cells: float = 1.0) -> np.ndarray:
    """(M, grid * grid) bool: the destination view's tokens whose content the source view showed
    within `cells` cells of the same place. Their error is what the scene did by itself (plus
    the warp's imprecision, which grows with the shift); content that came into view or slid
    across it is the move's."""
    rays = view_rays(dest_poses, hfov_deg, grid)
    shift = np.abs(view_coords(rays, source_poses, hfov_deg) - cell_coords(grid)[None])
    return (shift <= cells * 2.0 / grid).all(-1)


def holds(source_poses, dest_poses, hfov_deg: float, grid: int) -> np.ndarray:
    """(M,) bool: transitions that held the whole view in place (every token within HOLD_CELLS
    of a cell: a no-op, or a move clamped at a limit, up to a real camera's pose jitter)."""
    return np.asarray(held_in_place(source_poses, dest_poses, hfov_deg, grid, HOLD_CELLS).all(-1))


def _bins(rays: np.ndarray) -> np.ndarray:
    """Unit directions (..., 3) -> flat bin index (...) into an (N_PITCH, N_YAW) grid."""
    yaw = np.degrees(np.arctan2(rays[..., 0], rays[..., 2])) % 360.0
    pitch = np.degrees(np.arcsin(np.clip(rays[..., 1], -1.0, 1.0)))
    iy = np.floor(yaw / RESOLUTION_DEG).astype(np.int64) % N_YAW
    ip = np.clip(np.floor((pitch + 90.0) / RESOLUTION_DEG).astype(np.int64), 0, N_PITCH - 1)
    return ip * N_YAW + iy


def _blur(grid: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian with peak 1 (a lone token keeps weight 1 at its own bin): yaw wraps,
    pitch pads with zeros (no data beyond the poles)."""
    radius = math.ceil(3.0 * sigma)
    out = np.zeros_like(grid)
    for d in range(-radius, radius + 1):
        out += math.exp(-0.5 * (d / sigma) ** 2) * np.roll(grid, d, axis=1)
    grid, out = out, np.zeros_like(grid)
    for d in range(-radius, radius + 1):
        w = math.exp(-0.5 * (d / sigma) ** 2)
        if d >= 0:
            out[d:] += w * grid[:grid.shape[0] - d]
        else:
            out[:d] += w * grid[-d:]
    return out


@dataclass(frozen=True)
class ViewAtlas:
    """Smoothed sums and weights of measured token errors per direction bin (N_PITCH, N_YAW)."""

    sums: np.ndarray
    weights: np.ndarray
    mean: float        # the overall mean token error: the value where nothing was measured
    hfov_deg: float    # the camera's horizontal field of view at zoom 1
    tokens: int        # measured tokens the atlas holds

    def values(self) -> np.ndarray:
        """(N_PITCH, N_YAW) the error estimate per bin, shrunk towards the mean by PRIOR."""
        return (self.sums + PRIOR * self.mean) / (self.weights + PRIOR)

    def view(self, poses) -> np.ndarray:
        """(K, 3) raw poses -> (K,) mean estimated error over the directions each view shows."""
        poses = np.asarray(poses, dtype=np.float64).reshape(-1, 3)
        flat = self.values().reshape(-1)
        out = np.empty(len(poses))
        for i in range(0, len(poses), 4096):  # bounded memory: 4096 x 64 directions at a time
            out[i:i + 4096] = flat[_bins(view_rays(poses[i:i + 4096], self.hfov_deg,
                                                   FOOTPRINT))].mean(axis=1)
        return out

    def observed_fraction(self, pitch_range: tuple[float, float] = (-90.0, 90.0)) -> float:
        """Share of the sphere's area (between the pitches given) whose bins hold at least one
        token's worth of smoothed weight."""
        centres = -90.0 + (np.arange(N_PITCH) + 0.5) * RESOLUTION_DEG
        rows = (centres >= pitch_range[0]) & (centres <= pitch_range[1])
        area = np.cos(np.radians(centres[rows]))[:, None] * np.ones((1, N_YAW))
        return float((area * (self.weights[rows] >= 1.0)).sum() / area.sum())


def fit_view_atlas(dest_poses, token_errors, mask, hfov_deg: float) -> ViewAtlas:
    """dest_poses (M, 3) raw; token_errors (M, N) the measured error of each token of each
    transition's destination frame (N = grid * grid, row-major); mask (M, N) the tokens that count
    (see the module docstring). Raises ValueError when nothing counts or an error is not finite."""
    dest = np.asarray(dest_poses, dtype=np.float64).reshape(-1, 3)
    errors = np.asarray(token_errors, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if errors.ndim != 2 or errors.shape != mask.shape or len(errors) != len(dest):
        raise ValueError("token_errors and mask must be (M, N) for M destination poses")
    grid = round(math.sqrt(errors.shape[1]))
    if grid * grid != errors.shape[1]:
        raise ValueError(f"{errors.shape[1]} tokens per frame is not a square grid")
    if not mask.any():
        raise ValueError("no measured token to build a view atlas from")
    if not np.isfinite(errors[mask]).all() or not np.isfinite(dest).all():
        raise ValueError("measured token errors and poses must be finite")
    idx = _bins(view_rays(dest, hfov_deg, grid))[mask]
    size = N_PITCH * N_YAW
    sums = np.bincount(idx, weights=errors[mask], minlength=size).reshape(N_PITCH, N_YAW)
    weights = np.bincount(idx, minlength=size).astype(np.float64).reshape(N_PITCH, N_YAW)
    return ViewAtlas(sums=_blur(sums, BLUR_BINS), weights=_blur(weights, BLUR_BINS),
                     mean=float(errors[mask].mean()), hfov_deg=float(hfov_deg),
                     tokens=int(mask.sum()))
