"""`SimWorld`: perspective views of a panorama for any (pan, tilt, zoom) at simulated time t.

Rendering remaps the static panorama (from a mip level matched to the view's pixel footprint, so
wide views do not alias), then re-samples only the view pixels that fall on a dynamic zone from
that zone's small canvas at time t, then applies the day-cycle gain. Nothing copies the whole
panorama per frame, so a 224x224 view costs a few milliseconds. Same config, pose and t give
identical pixels. Any equirectangular backdrop works: the static faces of the zones (sign, dial,
screen, notice board) are painted into it when the world is built, the moving content at render
time. `kind_fractions` gives, per view, the share of each zone kind (`shared.scene.ZONE_KINDS`).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from shared.pose import Pose, PoseRanges
from shared.scene import ZONE_KINDS

from .dynamics import DynamicsConfig, SceneDynamics, ZoneGeometry, zone_geometry
from .layout import ZONE_KIND, SiteLayout, site_layout
from .panorama import panorama_for
from .projection import RayCache, view_fractions
from .zone_kinds import paint_overlays

# A zone's verdict on view pixels at (x, y) of its canvas: (zone, x, y) -> bool per pixel.
ZonePixels = Callable[[ZoneGeometry, np.ndarray, np.ndarray], np.ndarray]

_PAD = 4  # wrapped/replicated border around each mip level, for bilinear taps past the edges


@dataclass(frozen=True)
class SimWorldConfig:
    """What world to simulate. `panorama_path` replaces the procedural panorama with a user's file
    (the dynamic zones are then painted at the same angles over it)."""

    seed: int = 0
    panorama_path: str | None = None
    pano_width: int = 4096
    pano_height: int = 2048
    base_hfov_deg: float = 60.0  # horizontal field of view at zoom 1; hfov = base / zoom
    ranges: PoseRanges = field(default_factory=PoseRanges)
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    cache_dir: str | None = None  # where procedural panoramas are cached (None: regenerate)

    def __post_init__(self) -> None:
        if not 0.0 < self.base_hfov_deg < 180.0:
            raise ValueError(f"base_hfov_deg must be in (0, 180), got {self.base_hfov_deg}")


class SimWorld:
    """A simulated outdoor site with known dynamic regions, viewed through a pinhole PTZ camera."""

    def __init__(self, config: SimWorldConfig = SimWorldConfig(), panorama: np.ndarray | None = None) -> None:
        self.config = config
        self.ranges = config.ranges
        if panorama is None:
            panorama = panorama_for(config.seed, config.panorama_path, config.cache_dir,
                                    config.pano_width, config.pano_height)
        panorama = np.ascontiguousarray(panorama)
        if panorama.ndim != 3 or panorama.shape[2] != 3 or panorama.dtype != np.uint8:
            raise ValueError(f"panorama must be uint8 (H, W, 3), got {panorama.dtype} {panorama.shape}")
        h, w = panorama.shape[:2]
        if w != 2 * h:
            raise ValueError(f"panorama must be 2:1 (equirectangular), got {w}x{h}")
        self.layout: SiteLayout = site_layout(config.seed)
        panorama = paint_overlays(panorama, self.layout, config.seed)
        panorama.setflags(write=False)
        self._pano = panorama
        self.pano_width, self.pano_height = w, h
        n_levels = max(1, min(5, int(math.log2(max(w / 512.0, 1.0))) + 1))
        while n_levels > 1 and (w % 2 ** (n_levels - 1) or h % 2 ** (n_levels - 1)):
            n_levels -= 1
        self._levels = [panorama]
        while len(self._levels) < n_levels:
            prev = self._levels[-1]
            self._levels.append(cv2.resize(prev, (prev.shape[1] // 2, prev.shape[0] // 2),
                                           interpolation=cv2.INTER_AREA))
        self._padded = [_pad(level) for level in self._levels]
        self.dynamics = SceneDynamics(self.layout, w, h, config.seed, config.dynamics,
                                      align=2 ** (n_levels - 1))
        self._all_zones = tuple(zone_geometry(n, r, w, h, 2 ** (n_levels - 1))
                                for n, r in self.layout.zones().items())
        self._zone_static = {z.name: _crop(panorama, z) for z in self.dynamics.zones}
        self._rays = RayCache()
        self._canvas_cache: OrderedDict[tuple[str, float], dict] = OrderedDict()
        self._cache_lock = threading.Lock()

    # ---- public API -------------------------------------------------------------------------
    @property
    def panorama(self) -> np.ndarray:
        """The static panorama (read-only RGB uint8)."""
        return self._pano

    def hfov(self, zoom: float) -> float:
        """Horizontal field of view in degrees at a zoom (after clamping to the ranges)."""
        z = min(max(zoom, self.ranges.zoom_min), self.ranges.zoom_max)
        return self.config.base_hfov_deg / z

    def render(self, pose: Pose, t: float, width: int = 224, height: int = 224,
               static: bool = False) -> np.ndarray:
        """The RGB uint8 (height, width, 3) view at `pose` (wrapped/clamped first) and time t.

        `static=True` renders the panorama alone: no moving objects, sign off, full daylight.
        """
        pose = self.ranges.apply(pose)
        u, v = self._fractions(pose, width, height)
        lvl = self._level_for(pose.zoom, width)
        src = self._padded[lvl]
        lh, lw = self._levels[lvl].shape[:2]
        mx = (u * np.float32(lw) + np.float32(_PAD - 0.5)).reshape(height, width)
        my = (v * np.float32(lh) + np.float32(_PAD - 0.5)).reshape(height, width)
        view = cv2.remap(src, mx, my, cv2.INTER_LINEAR)
        if static or not self.config.dynamics.enabled:
            return view
        flat = view.reshape(-1, 3)
        for zone, idx, dx, dy in self._zone_hits(u, v):
            canvas = self._canvas(zone, t, lvl)
            s = np.float32(2 ** lvl)
            lx = (dx + np.float32(zone.margin)) / s - np.float32(0.5)
            ly = (dy + np.float32(zone.margin)) / s - np.float32(0.5)
            flat[idx] = _remap_points(canvas, lx, ly)
        gains = self.dynamics.illumination(t)
        if np.any(gains != 1.0):
            lut = np.clip(np.arange(256, dtype=np.float32)[:, None] * gains[None, :] + 0.5, 0, 255)
            view = cv2.LUT(view, lut.astype(np.uint8).reshape(256, 1, 3))
        return view

    def dynamic_mask(self, pose: Pose, t: float, width: int = 64, height: int = 64) -> np.ndarray:
        """Boolean (height, width): view pixels whose content at t differs from the static scene
        (a moving object is there now, or the sign is lit). The global day cycle is not counted."""

        def changed(zone: ZoneGeometry, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
            alpha = self._alpha(zone, t)
            ix = np.clip(np.floor(cx).astype(np.int64), 0, alpha.shape[1] - 1)
            iy = np.clip(np.floor(cy).astype(np.int64), 0, alpha.shape[0] - 1)
            return alpha[iy, ix]

        return self._zone_pixel_mask(pose, width, height, changed)

    def dynamic_fraction(self, pose: Pose, t: float, width: int = 64, height: int = 64) -> float:
        """Fraction of the view that differs from the static scene at time t, in [0, 1]."""
        return float(self.dynamic_mask(pose, t, width, height).mean())

    def zone_mask(self, pose: Pose, width: int = 64, height: int = 64) -> np.ndarray:
        """Boolean (height, width): view pixels inside a dynamic zone (where anything ever changes)."""
        return self._zone_pixel_mask(pose, width, height, _inside_clip)

    def _zone_pixel_mask(self, pose: Pose, width: int, height: int, verdict: ZonePixels) -> np.ndarray:
        """Boolean (height, width): False off the dynamic zones; on one, `verdict` of the pixels'
        (x, y) in the zone's canvas."""
        pose = self.ranges.apply(pose)
        u, v = self._fractions(pose, width, height)
        mask = np.zeros(width * height, bool)
        if not self.config.dynamics.enabled:
            return mask.reshape(height, width)
        for zone, idx, dx, dy in self._zone_hits(u, v):
            mask[idx] = verdict(zone, dx + zone.margin, dy + zone.margin)
        return mask.reshape(height, width)

    def dynamic_zone_fraction(self, pose: Pose, width: int = 64, height: int = 64) -> float:
        """Fraction of the view inside the known dynamic zones: the ground truth for "the camera is
        looking where the world changes" (independent of time)."""
        return float(self.zone_mask(pose, width, height).mean())

    def kind_mask(self, pose: Pose, width: int = 64, height: int = 64) -> np.ndarray:
        """(height, width) int8: each view pixel's kind as an index into `shared.scene.ZONE_KINDS`,
        by zone region (time-independent). With the dynamics disabled only "detail" remains."""
        pose = self.ranges.apply(pose)
        u, v = self._fractions(pose, width, height)
        labels = np.full(width * height, ZONE_KINDS.index("static"), np.int8)
        for zone, idx, dx, dy in self._zone_hits(u, v, self._all_zones):
            kind = ZONE_KIND[zone.name]
            if kind != "detail" and not self.config.dynamics.enabled:
                continue
            inside = _inside_clip(zone, dx + zone.margin, dy + zone.margin)
            labels[idx[inside]] = ZONE_KINDS.index(kind)
        return labels.reshape(height, width)

    def kind_fractions(self, pose: Pose, width: int = 64, height: int = 64) -> dict[str, float]:
        """The share of the view covered by each zone kind: keys `shared.scene.ZONE_KINDS`, values
        summing to 1 ("static" is the rest). Time-independent (by zone region)."""
        counts = np.bincount(self.kind_mask(pose, width, height).ravel(), minlength=len(ZONE_KINDS))
        return {kind: float(c) / (width * height) for kind, c in zip(ZONE_KINDS, counts, strict=True)}

    def zone_kinds(self) -> dict[str, str]:
        """The kind (a value of `shared.scene.ZONE_KINDS`) of every zone, by zone name."""
        return {name: ZONE_KIND[name] for name in self.layout.zones()}

    def zone_poses(self, zoom: float = 8.0) -> dict[str, Pose]:
        """A pose centred on each zone, of every kind (e.g. for tests and demos), wrapped/clamped."""
        out = {}
        for name, rect in self.layout.zones().items():
            yaw, pitch = rect.centre
            out[name] = self.ranges.apply(Pose(yaw, pitch, zoom))
        return out

    def light_on(self, t: float) -> bool:
        """Whether the blinking sign is lit at time t."""
        return self.dynamics.light_on(t)

    def info(self) -> dict:
        """A JSON-friendly description of the world (for status endpoints and benchmark reports)."""
        return {
            "seed": self.config.seed,
            "source": self.config.panorama_path or "procedural",
            "panorama_size": [self.pano_width, self.pano_height],
            "mip_levels": len(self._levels),
            "base_hfov_deg": self.config.base_hfov_deg,
            "ranges": asdict(self.ranges),
            "dynamics": asdict(self.config.dynamics),
            "zones": {n: asdict(r) for n, r in self.layout.zones().items()},
            "zone_kinds": self.zone_kinds(),
        }

    # ---- internals --------------------------------------------------------------------------
    def _fractions(self, pose: Pose, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        rays = self._rays.get(width, height, self.config.base_hfov_deg / pose.zoom)
        return view_fractions(rays, pose.pan, pose.tilt)

    def _level_for(self, zoom: float, width: int) -> int:
        """The mip level whose texel is about one view pixel at the view centre."""
        ratio = (self.pano_width / 360.0) * (self.config.base_hfov_deg / zoom) / width
        return int(min(max(math.floor(math.log2(max(ratio, 1e-9))), 0), len(self._levels) - 1))

    def _zone_hits(self, u: np.ndarray, v: np.ndarray, zones: tuple[ZoneGeometry, ...] | None = None):
        """For each zone (default: the dynamic ones) the view touches: (zone, pixel indices, x and y
        from the zone's origin)."""
        ux = u * np.float32(self.pano_width)
        vy = v * np.float32(self.pano_height)
        for zone in self.dynamics.zones if zones is None else zones:
            rows = (vy >= zone.y0) & (vy < zone.y0 + zone.height)
            if not rows.any():
                continue
            dx = ux - np.float32(zone.x0)
            dx[dx < 0] += np.float32(self.pano_width)
            inside = rows & (dx < zone.width)
            if not inside.any():
                continue
            idx = np.flatnonzero(inside)
            yield zone, idx, dx[idx], vy[idx] - np.float32(zone.y0)

    def _entry(self, zone: ZoneGeometry, t: float) -> dict:
        key = (zone.name, float(t))
        with self._cache_lock:
            entry = self._canvas_cache.get(key)
            if entry is not None:
                self._canvas_cache.move_to_end(key)
                return entry
        entry = {0: self.dynamics.draw(zone, self._zone_static[zone.name], t)}
        with self._cache_lock:
            self._canvas_cache[key] = entry
            while len(self._canvas_cache) > 32:
                self._canvas_cache.popitem(last=False)
        return entry

    def _canvas(self, zone: ZoneGeometry, t: float, lvl: int) -> np.ndarray:
        """The zone's canvas at t and mip level `lvl`, halved the same way as the panorama levels."""
        entry = self._entry(zone, t)
        level = max(k for k in entry if isinstance(k, int) and k <= lvl)
        canvas = entry[level]
        while level < lvl:
            canvas = cv2.resize(canvas, (canvas.shape[1] // 2, canvas.shape[0] // 2),
                                interpolation=cv2.INTER_AREA)
            level += 1
            entry[level] = canvas
        return canvas

    def _alpha(self, zone: ZoneGeometry, t: float) -> np.ndarray:
        entry = self._entry(zone, t)
        alpha = entry.get("alpha")
        if alpha is None:
            alpha = np.any(entry[0] != self._zone_static[zone.name], axis=2)
            entry["alpha"] = alpha
        return alpha


def _inside_clip(zone: ZoneGeometry, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    cy0, cy1, cx0, cx1 = zone.clip
    return (cx >= cx0) & (cx < cx1) & (cy >= cy0) & (cy < cy1)


def _remap_points(src: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of `src` at scattered points, (n, 3). cv2.remap caps each side of its output
    below 32767, so the points are laid out as rows of 256."""
    n = x.shape[0]
    rows = -(-n // 256)
    mx = np.zeros(rows * 256, np.float32)
    my = np.zeros(rows * 256, np.float32)
    mx[:n], my[:n] = x, y
    out = cv2.remap(src, mx.reshape(rows, 256), my.reshape(rows, 256), cv2.INTER_LINEAR)
    return out.reshape(-1, 3)[:n]


def _pad(level: np.ndarray) -> np.ndarray:
    """Wrap columns (yaw is periodic) and replicate rows (the poles) by `_PAD` pixels."""
    wrapped = np.concatenate([level[:, -_PAD:], level, level[:, :_PAD]], axis=1)
    return cv2.copyMakeBorder(wrapped, _PAD, _PAD, 0, 0, cv2.BORDER_REPLICATE)


def _crop(pano: np.ndarray, zone: ZoneGeometry) -> np.ndarray:
    """The zone's static canvas: its aligned box plus margin, columns wrapped, rows clamped."""
    h, w = pano.shape[:2]
    m = zone.margin
    rows = np.clip(np.arange(zone.y0 - m, zone.y0 + zone.height + m), 0, h - 1)
    cols = np.arange(zone.x0 - m, zone.x0 + zone.width + m) % w
    return np.ascontiguousarray(pano[rows][:, cols])
