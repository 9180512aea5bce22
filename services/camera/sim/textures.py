"""Procedural texture helpers for the panorama: wrap-around value noise and plane projections.

A world model learns from the rendered views, so every surface needs detail at several scales; flat
colour teaches nothing. Everything here is vectorised numpy/cv2 and deterministic for a given
`numpy.random.Generator`, and wraps horizontally so that the panorama has no seam at yaw 0/360.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def value_noise(rng: np.random.Generator, height: int, width: int, cells_y: int, cells_x: int,
                wrap_y: bool = False) -> np.ndarray:
    """Smooth random field in [0, 1] of shape (height, width), bicubic over a cells_y x cells_x grid.

    Wraps horizontally (always) and vertically when `wrap_y`, by padding the grid with wrapped cells
    before upscaling and cropping the middle.
    """
    grid = rng.random((cells_y, cells_x)).astype(np.float32)
    pad = 2
    grid = np.concatenate([grid[:, -pad:], grid, grid[:, :pad]], axis=1)
    if wrap_y:
        grid = np.concatenate([grid[-pad:], grid, grid[:pad]], axis=0)
    else:
        grid = np.concatenate([grid[:1].repeat(pad, 0), grid, grid[-1:].repeat(pad, 0)], axis=0)
    sx, sy = width / cells_x, height / cells_y
    big = cv2.resize(grid, (round((cells_x + 2 * pad) * sx), round((cells_y + 2 * pad) * sy)),
                     interpolation=cv2.INTER_CUBIC)
    x0, y0 = round(pad * sx), round(pad * sy)
    out = big[y0:y0 + height, x0:x0 + width]
    return np.clip(out, 0.0, 1.0)


def fbm(rng: np.random.Generator, height: int, width: int, base_cells: int, octaves: int,
        persistence: float = 0.5, aspect: float = 1.0, wrap_y: bool = False) -> np.ndarray:
    """Fractal (multi-octave) value noise normalised to [0, 1].

    `base_cells` is the number of cells across the width at the coarsest octave; `aspect` scales
    the number of vertical cells (cells_y = base_cells * height / width * aspect).
    """
    total = np.zeros((height, width), np.float32)
    amp, norm = 1.0, 0.0
    for o in range(octaves):
        cx = base_cells * 2 ** o
        cy = max(1, round(cx * height / width * aspect))
        if cx > width // 2 or cy > height // 2:
            break
        total += amp * value_noise(rng, height, width, cy, cx, wrap_y=wrap_y)
        norm += amp
        amp *= persistence
    total /= max(norm, 1e-6)
    lo, hi = float(total.min()), float(total.max())
    return (total - lo) / max(hi - lo, 1e-6)


def tileable_texture(rng: np.random.Generator, size: int, base_cells: int, octaves: int,
                     persistence: float = 0.55) -> np.ndarray:
    """A square fBm texture that wraps in both directions, for projecting onto planes."""
    return fbm(rng, size, size, base_cells, octaves, persistence, wrap_y=True)


def smoothstep(lo: float, hi: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def plane_coords(yaw_rad: np.ndarray, pitch_rad: np.ndarray, height: float,
                 max_dist: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersect rays (yaw row vector, |pitch| column vector) with a horizontal plane.

    Returns plane x, y (shape rows x cols) and the distance per row (rows x 1). Used for the ground
    (camera above it) and the cloud deck (camera below it), giving perspective-correct texture that
    gets finer towards the horizon.
    """
    dist = np.minimum(height / np.tan(np.maximum(np.abs(pitch_rad), 1e-4)), max_dist).astype(np.float32)
    return dist * np.sin(yaw_rad).astype(np.float32), dist * np.cos(yaw_rad).astype(np.float32), dist


def sample_plane(texture: np.ndarray, px: np.ndarray, py: np.ndarray, dist: np.ndarray,
                 texels_per_unit: float, yaw_step_rad: float) -> np.ndarray:
    """Sample a tileable texture at plane coordinates, mip-mapped per row (trilinear).

    Far rows would alias badly (one pixel spans many texels), so each row samples the two mip
    levels around its pixel footprint and blends them; a hard switch of level would show as bands.
    The footprint is the larger of the across (dist * step) and along (~dist^2 * step, for a plane
    at height 1) extents, so far rows blur instead of showing moire.
    """
    d = dist[:, 0].astype(np.float64)
    footprint = (d * d + 1.0) * yaw_step_rad * texels_per_unit  # texels per pixel, per row
    max_lod = math.log2(texture.shape[0])  # the 1x1 level: the mean, for the far field
    lod = np.clip(np.log2(np.maximum(footprint, 1e-6)), 0.0, max_lod)
    base = np.minimum(np.floor(lod), max_lod - 1).astype(np.int32)  # blend base and base + 1
    frac = (lod - base).astype(np.float32)
    pyramid = [texture]
    while len(pyramid) <= int(base.max()) + 1:
        pyramid.append(cv2.resize(pyramid[-1], None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))
    out = np.empty(px.shape, np.float32)
    for lvl in np.unique(base):
        rows = np.nonzero(base == lvl)[0]
        r0, r1 = int(rows[0]), int(rows[-1]) + 1  # distances are monotonic, so rows are contiguous
        out[r0:r1] = _sample_level(pyramid, int(lvl), px[r0:r1], py[r0:r1], dist[r0:r1], texels_per_unit)
        f = frac[r0:r1]
        if f.max() > 0.0:
            upper = _sample_level(pyramid, int(lvl) + 1, px[r0:r1], py[r0:r1], dist[r0:r1], texels_per_unit)
            upper -= out[r0:r1]
            upper *= f[:, None]
            out[r0:r1] += upper
    return out


def _sample_level(pyramid: list[np.ndarray], lvl: int, px: np.ndarray, py: np.ndarray, dist: np.ndarray,
                  texels_per_unit: float) -> np.ndarray:
    tex = pyramid[lvl]
    scale = texels_per_unit / (2 ** lvl)
    mx, my = px * scale, py * scale
    # remap works in 16-bit fixed point: fold coordinates into one period when they could overflow
    if (float(dist.max()) + 100.0) * scale > 30000.0:
        n = tex.shape[0]
        mx, my = np.mod(mx, n), np.mod(my, n)
    return cv2.remap(tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)


def yaw_pitch_grids(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Yaw (1, W) and pitch (H, 1) in degrees at the pixel centres of an equirectangular image."""
    yaw = (np.arange(width, dtype=np.float32) + 0.5) * (360.0 / width)
    pitch = 90.0 - (np.arange(height, dtype=np.float32) + 0.5) * (180.0 / height)
    return yaw[None, :], pitch[:, None]


def ridge_profile(rng: np.random.Generator, width: int, base: float, amplitude: float,
                  harmonics: int = 40) -> np.ndarray:
    """A wrap-around skyline height (degrees) per column: a random Fourier series with 1/k decay."""
    x = (np.arange(width, dtype=np.float64) + 0.5) / width * 2.0 * math.pi
    prof = np.zeros(width)
    for k in range(1, harmonics + 1):
        prof += rng.normal() / k ** 1.1 * np.sin(k * x + rng.uniform(0, 2 * math.pi))
    prof = (prof - prof.min()) / max(prof.max() - prof.min(), 1e-9)
    return (base + amplitude * prof).astype(np.float32)


def upsample2_wrap(a: np.ndarray) -> np.ndarray:
    """Bilinear 2x upsampling that wraps horizontally (no seam at yaw 0/360)."""
    h, w = a.shape[:2]
    padded = np.concatenate([a[:, -1:], a, a[:, :1]], axis=1)
    big = cv2.resize(padded, ((w + 2) * 2, h * 2), interpolation=cv2.INTER_LINEAR)
    return big[:, 2:2 + 2 * w]
