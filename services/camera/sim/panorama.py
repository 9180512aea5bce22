"""The static world: a procedural equirectangular panorama of an outdoor site, or a user's panorama file.

Equirectangular convention used throughout the simulator: column x covers yaw x/W*360 degrees
(yaw increases to the right and wraps), row y covers pitch 90 - y/H*180 degrees (the horizon is the
middle row). Generation is deterministic for a seed, vectorised, and takes about a second at
4096x2048 on two cores.
"""

from __future__ import annotations

import math
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from .layout import site_layout
from .scenery import paint_hills, paint_lake, paint_plaza, paint_road, paint_town, paint_trees
from .textures import (
    fbm,
    plane_coords,
    sample_plane,
    smoothstep,
    tileable_texture,
    upsample2_wrap,
    yaw_pitch_grids,
)

PANORAMA_VERSION = 2  # bump when generation changes, so disk caches are not reused


class PanoramaError(ValueError):
    """A panorama file is missing, unreadable, or not an image."""


def _rngs(seed: int, n: int) -> list[np.random.Generator]:
    """Independent streams per component, so editing one painter does not reshuffle the others."""
    ss = np.random.SeedSequence([abs(int(seed)), int(seed < 0), PANORAMA_VERSION])
    return [np.random.default_rng(s) for s in ss.spawn(n)]


def generate_panorama(seed: int, width: int = 4096, height: int = 2048) -> np.ndarray:
    """A procedural outdoor site as an RGB uint8 equirectangular image of shape (height, width, 3).

    Sky with a gradient and perspective clouds, two ridges of hills, a town with lit windows and a
    sign, a road with tunnel portals, a paved plaza, a lake, trees and textured ground, all with
    detail at several scales. Deterministic for (seed, width, height).
    """
    if width != 2 * height or height < 64:
        raise ValueError(f"panorama must be 2:1 and at least 128x64, got {width}x{height}")
    rng_sky, rng_ground, rng_detail, rng_hills, rng_town, rng_lake, rng_trees, rng_grain = _rngs(seed, 8)
    layout = site_layout(seed)
    img = np.empty((height, width, 3), np.float32)
    hz = height // 2
    # Sky and ground noise are smooth fields: compute them at half resolution and upsample; the
    # per-pixel detail (grass blades, grain) is added at full resolution.
    yaw, pitch = yaw_pitch_grids(height // 2, width // 2)
    yaw_r, pitch_r = np.radians(yaw), np.radians(pitch)
    step = 2.0 * math.pi / (width // 2)
    # The big independent layers run on two threads (numpy and cv2 release the GIL); each has its
    # own random stream, so the result does not depend on scheduling.
    with ThreadPoolExecutor(max_workers=2) as pool:
        sky = pool.submit(_paint_sky, img[:hz], yaw_r, pitch_r[:hz // 2], rng_sky, step)
        ground = pool.submit(_paint_ground, img[hz:], yaw_r, pitch_r[hz // 2:], rng_ground, step)
        detail_job = pool.submit(fbm, rng_detail, height, width, 96, 4, 0.65)
        grain_job = pool.submit(rng_grain.standard_normal, (height, width), np.float32)
        sky.result()
        ground.result()
        detail, grain = detail_job.result(), grain_job.result()
    paint_hills(img, rng_hills, detail)
    paint_lake(img, layout, rng_lake, detail)
    paint_road(img, layout, detail)
    paint_plaza(img, layout, detail)
    paint_town(img, layout, rng_town, detail)
    paint_trees(img, layout, rng_trees, detail)
    grain *= 0.018 * 255.0
    img *= 255.0
    img += grain[..., None]
    img += 0.5
    np.clip(img, 0.0, 255.0, out=img)
    return img.astype(np.uint8)


def _paint_sky(sky: np.ndarray, yaw_r: np.ndarray, pitch_r: np.ndarray, rng: np.random.Generator,
               step: float) -> None:
    """Blue gradient plus clouds on a flat cloud deck, thinning into haze near the horizon.

    `yaw_r`/`pitch_r` are half-resolution angle grids; `sky` is the full-resolution upper half.
    """
    p = np.degrees(pitch_r)  # (rows, 1)
    t = (np.clip(p, 0.0, 90.0) / 90.0) ** 0.55
    horizon = np.array((0.80, 0.86, 0.93), np.float32)
    zenith = np.array((0.20, 0.40, 0.78), np.float32)
    base = horizon * (1.0 - t[..., None]) + zenith * t[..., None]
    tex = tileable_texture(rng, 1024, 6, 8, persistence=0.58)
    px, py, dist = plane_coords(yaw_r, pitch_r, 1.0, 60.0)
    tpu = 1024 / 8.0
    density = sample_plane(tex, px, py, dist, tpu, step)
    shade = sample_plane(tex, py + 5.3, px - 2.1, dist, tpu * 2.3, step)
    cover = rng.uniform(0.5, 0.58)
    c = smoothstep(cover, cover + 0.16, density) * smoothstep(1.0, 8.0, p)
    shade *= 0.34
    shade += 0.70
    half = shade[..., None] * np.array((0.98, 0.98, 1.0), np.float32)  # cloud colour ...
    half -= base
    half *= c[..., None]
    half += base  # ... blended over the sky gradient by cloud density
    sky[:] = upsample2_wrap(half)


def _paint_ground(ground: np.ndarray, yaw_r: np.ndarray, pitch_r: np.ndarray, rng: np.random.Generator,
                  step: float) -> None:
    """Meadow on the ground plane: grass tones, dirt patches and fine grain, hazier with distance.

    Noise layers are sampled on the half-resolution angle grids; grass blades at full resolution.
    """
    px, py, dist = plane_coords(yaw_r, pitch_r, 1.0, 400.0)
    tex = tileable_texture(rng, 1024, 4, 8, persistence=0.6)
    tpu = 1024 / 40.0
    big = sample_plane(tex, px, py, dist, tpu, step)
    # Detail layers each sum two samples at incommensurate scales and angles, so their tiling
    # never shows as a lattice.
    ca, sa = np.float32(math.cos(0.65)), np.float32(math.sin(0.65))
    rx, ry = px * ca - py * sa, px * sa + py * ca
    mid = sample_plane(tex, py + 13.1, px + 7.7, dist, tpu * 9.0, step)
    mid += sample_plane(tex, rx, ry, dist, tpu * 5.56, step)
    mid *= 0.5
    fine = sample_plane(tex, px - 3.3, py + 21.9, dist, tpu * 70.0, step)
    fine += sample_plane(tex, ry + 0.37, rx - 5.1, dist, tpu * 43.3, step)
    fine *= 0.5
    del rx, ry
    grass_a, grass_b = np.array((0.29, 0.44, 0.17), np.float32), np.array((0.46, 0.54, 0.24), np.float32)
    col = smoothstep(0.3, 0.7, big)[..., None] * (grass_b - grass_a)
    col += grass_a
    dirt = smoothstep(0.58, 0.68, mid)[..., None] * 0.7
    col += (np.array((0.50, 0.42, 0.30), np.float32) - col) * dirt
    col *= (0.75 + 0.3 * mid + 0.45 * (fine - 0.5))[..., None]
    haze = (1.0 - np.exp(-dist / 120.0))[..., None]
    haze_col = np.array((0.66, 0.72, 0.76), np.float32)
    col -= haze_col
    col *= 1.0 - haze
    col += haze_col
    # grass blades: vertical streaks in image space, strongest in the near field, gone in the haze
    h, w = ground.shape[:2]
    blades = np.asarray(cv2.blur(rng.random((h, w), dtype=np.float32), (1, 7)), np.float32)
    blades -= 0.5
    near = np.clip(np.abs(pitch_r) * 3.0, 0.15, 1.0) * np.exp(-dist / 120.0) * 1.2
    blades *= cv2.resize(near, (1, h), interpolation=cv2.INTER_LINEAR)
    blades += 1.0
    ground[:] = upsample2_wrap(col)
    ground *= blades[..., None]


def load_panorama(path: str | os.PathLike[str]) -> np.ndarray:
    """Read any image file as an RGB uint8 panorama, resized to 2:1 when it is not.

    Raises PanoramaError (with the path) when the file is missing, unreadable or not an image.
    """
    p = Path(path)
    if not p.is_file():
        raise PanoramaError(f"panorama file not found: {p}")
    try:
        data = np.fromfile(str(p), dtype=np.uint8)
    except OSError as e:
        raise PanoramaError(f"cannot read panorama file {p}: {e}") from e
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None or img.ndim not in (2, 3) or min(img.shape[:2]) < 2:
        raise PanoramaError(f"not a readable image: {p}")
    if img.dtype != np.uint8:  # 16-bit PNG/TIFF: scale down to 8 bits
        img = cv2.normalize(img.astype(np.float32), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        raise PanoramaError(f"unsupported channel count {img.shape[2]} in {p}")
    h, w = img.shape[:2]
    if w != 2 * h:
        h = max(2, round(math.sqrt(w * h / 2.0)))  # keep the pixel count, make it 2:1
        img = cv2.resize(img, (2 * h, h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img)


def panorama_for(seed: int, path: str | os.PathLike[str] | None = None,
                 cache_dir: str | os.PathLike[str] | None = None, width: int = 4096,
                 height: int = 2048) -> np.ndarray:
    """The panorama a world should use: the user's file if given, else a (disk-cached) procedural one.

    The cache holds .npy files named by seed, size and generator version, written atomically, so
    concurrent processes never see half a file.
    """
    if path is not None:
        return load_panorama(path)
    if cache_dir is None:
        return generate_panorama(seed, width, height)
    d = Path(cache_dir)
    f = d / f"pano_v{PANORAMA_VERSION}_s{seed}_{width}x{height}.npy"
    if f.is_file():
        try:
            arr = np.load(f, allow_pickle=False)
            if arr.shape == (height, width, 3) and arr.dtype == np.uint8:
                return arr
        except (OSError, ValueError):
            pass  # corrupt cache entry: regenerate and overwrite it
    arr = generate_panorama(seed, width, height)
    d.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=f.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, arr, allow_pickle=False)
        os.replace(tmp, f)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return arr
