"""Static landmarks painted into the procedural panorama: hills, town, sign panel, road, plaza, lake, trees.

Each painter works on a float32 RGB equirectangular image in [0, 1] and only touches its own small
region (vectorised per region, no per-pixel Python), so the whole site paints in well under a second.
Regions come from `SiteLayout`, the same one the dynamics use, so cars drive on the road and people
walk on the plaza.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .layout import AngleRect, SiteLayout, angle_rect_px
from .textures import plane_coords, ridge_profile, smoothstep
from .zone_kinds import sign_face

Color = tuple[float, float, float]


def blit(img: np.ndarray, x0: int, y0: int, rgb: np.ndarray, alpha: np.ndarray | None = None) -> None:
    """Alpha-composite a small float image at (x0, y0), wrapping columns around the panorama."""
    h_img, w_img = img.shape[:2]
    h, w = rgb.shape[:2]
    r0, r1 = max(0, y0), min(h_img, y0 + h)
    if r1 <= r0:
        return
    cols = (x0 + np.arange(w)) % w_img
    src = rgb[r0 - y0:r1 - y0]
    if alpha is None:
        img[r0:r1, cols] = src
        return
    a = alpha[r0 - y0:r1 - y0, :, None]
    img[r0:r1, cols] = img[r0:r1, cols] * (1.0 - a) + src * a


def region(img: np.ndarray, x0: int, x1: int, y0: int, y1: int) -> np.ndarray:
    """A copy of a wrapped region (columns modulo width)."""
    return img[y0:y1][:, np.arange(x0, x1) % img.shape[1]]


def _detail(detail: np.ndarray, x0: int, x1: int, y0: int, y1: int) -> np.ndarray:
    return detail[max(y0, 0):y1][:, np.arange(x0, x1) % detail.shape[1]]


def paint_hills(img: np.ndarray, rng: np.random.Generator, detail: np.ndarray) -> None:
    """Two wrap-around ridge lines on the horizon: far bluish hills, nearer green ones."""
    h, w = img.shape[:2]
    ppd = h / 180.0
    r0, r1 = int((90.0 - 12.0) * ppd), int((90.0 + 0.6) * ppd)
    pitch = (90.0 - (np.arange(r0, r1, dtype=np.float32) + 0.5) / ppd)[:, None]
    band, det = img[r0:r1], detail[r0:r1]
    layers = ((ridge_profile(rng, w, 0.8, 9.0), (0.50, 0.57, 0.66), 0.25),
              (ridge_profile(rng, w, -0.2, 4.5), (0.30, 0.42, 0.25), 0.6))
    for ridge, color, contrast in layers:
        a = np.clip((ridge[None, :] - pitch) * ppd, 0.0, 1.0)[..., None]
        depth = np.clip((ridge[None, :] - pitch) / 6.0, 0.0, 1.0)
        shade = (1.0 - contrast / 2 + contrast * det) * (1.0 - 0.25 * depth)
        band[:] = band * (1.0 - a) + (np.array(color, np.float32) * shade[..., None]) * a


def _building(rng: np.random.Generator, w_px: int, h_px: int, ppd: float, det: np.ndarray,
              color: Color, windows: bool = True) -> np.ndarray:
    """Facade with a textured wall, a roof band, edge shading and a grid of lit/dark windows."""
    rgb = np.array(color, np.float32) * (0.8 + 0.35 * det[..., None])
    ly = np.arange(h_px, dtype=np.float32)[:, None] / ppd
    lx = np.arange(w_px, dtype=np.float32)[None, :] / ppd
    rgb *= (1.0 - 0.15 * ly / max(float(ly.max()), 1e-6))[..., None]  # lit from above
    if windows:
        sx, sy = rng.uniform(0.8, 1.5), rng.uniform(0.9, 1.5)
        fw, fh, m = rng.uniform(0.45, 0.7), rng.uniform(0.45, 0.65), 0.6
        wx, wy = lx - m, ly - m - 0.5
        inside = (wx >= 0) & (wx < lx.max() - 2 * m) & (wy >= 0) & (wy < ly.max() - 2 * m - 0.5)
        win = inside & (np.mod(wx, sx) < sx * fw) & (np.mod(wy, sy) < sy * fh)
        lit_table = rng.random((64, 64)) < rng.uniform(0.15, 0.45)
        cx = (np.floor(wx / sx).astype(np.int64) % 64) + np.zeros_like(wy, dtype=np.int64)
        cy = (np.floor(wy / sy).astype(np.int64) % 64) + np.zeros_like(wx, dtype=np.int64)
        lit = lit_table[cy, cx]
        dark = np.array((0.16, 0.20, 0.27), np.float32) + 0.12 * (1.0 - ly / max(ly.max(), 1e-6))[..., None]
        dark = np.broadcast_to(dark, rgb.shape)
        glow = np.array((0.95, 0.83, 0.52), np.float32) * (0.85 + 0.25 * det[..., None])
        rgb = np.where(win[..., None], np.where(lit[..., None], glow, dark), rgb)
    roof = max(2, int(0.35 * ppd))
    rgb[:roof] *= 0.55
    edge = max(1, int(0.12 * ppd))
    rgb[:, :edge] *= 0.7
    rgb[:, -edge:] *= 0.8
    return rgb


def paint_town(img: np.ndarray, layout: SiteLayout, rng: np.random.Generator, detail: np.ndarray) -> None:
    """Buildings standing on the horizon, and the sign's building (drawn last, in front)."""
    h, w = img.shape[:2]
    ppd = w / 360.0
    palette = ((0.62, 0.60, 0.56), (0.72, 0.66, 0.55), (0.58, 0.34, 0.27), (0.44, 0.55, 0.64),
               (0.80, 0.78, 0.72), (0.50, 0.48, 0.50))
    yaw = layout.town_yaw0
    while yaw < layout.town_yaw0 + layout.town_span:
        bw, bh, base = rng.uniform(2.5, 7.5), rng.uniform(3.0, 13.0), rng.uniform(-1.6, -0.6)
        _place_building(img, rng, detail, yaw, bw, base, base + bh, palette[rng.integers(len(palette))], ppd)
        yaw += bw + rng.uniform(-1.0, 1.2)
    # the buildings that carry the dial (a tower), the screen and the notice board; their faces are
    # painted over every backdrop by zone_kinds.paint_overlays
    for rect, color in ((layout.dial, (0.60, 0.52, 0.44)), (layout.screen, (0.42, 0.44, 0.48)),
                        (layout.board, (0.70, 0.64, 0.52))):
        _place_building(img, rng, detail, rect.yaw0 - 2.0, rect.yaw_span + 4.0, -1.0, rect.pitch_hi + 2.5,
                        color, ppd)
    s = layout.sign
    base = -1.0
    _place_building(img, rng, detail, s.yaw0 - 3.0, s.yaw_span + 6.0, base, s.pitch_hi + 4.0,
                    (0.66, 0.63, 0.58), ppd)
    x0, x1, y0, y1 = angle_rect_px(s, w, h)
    frame = max(2, int(0.35 * ppd))
    panel = np.full((y1 - y0 + 2 * frame, x1 - x0 + 2 * frame, 3), 0.30, np.float32)
    panel[frame:-frame, frame:-frame] = sign_face(x1 - x0, y1 - y0, lit=False).astype(np.float32) / 255.0
    blit(img, x0 - frame, y0 - frame, panel)


def _place_building(img: np.ndarray, rng: np.random.Generator, detail: np.ndarray, yaw0: float,
                    width_deg: float, base: float, top: float, color: Color, ppd: float) -> None:
    x0 = round((yaw0 % 360.0) * ppd)
    x1 = x0 + max(2, round(width_deg * ppd))
    y0, y1 = round((90.0 - top) * ppd), round((90.0 - base) * ppd)
    rgb = _building(rng, x1 - x0, y1 - y0, ppd, _detail(detail, x0, x1, y0, y1), color)
    blit(img, x0, y0, rgb)


def paint_road(img: np.ndarray, layout: SiteLayout, detail: np.ndarray) -> None:
    """Asphalt with edge lines and a dashed centre line, sidewalks, and tunnel portals at both ends."""
    h, w = img.shape[:2]
    ppd = w / 360.0
    road = layout.road
    x0, x1, y0, y1 = angle_rect_px(road, w, h)
    walk = max(3, int(1.2 * ppd))
    side = region(img, x0, x1, y0 - walk, y1 + walk)
    det = _detail(detail, x0, x1, y0 - walk, y1 + walk)
    side[:] = np.array((0.66, 0.65, 0.62), np.float32) * (0.8 + 0.35 * det[..., None])
    side[walk - 2:walk] *= 0.6
    side[-walk:-walk + 2] *= 0.6
    asphalt = np.array((0.30, 0.31, 0.33), np.float32) * (0.7 + 0.6 * det[walk:-walk, :, None])
    lx = np.arange(x1 - x0, dtype=np.float32)[None, :] / ppd
    ly = 90.0 - (y0 + np.arange(y1 - y0, dtype=np.float32)[:, None] + 0.5) / ppd  # pitch per row
    lw = 0.25
    edge = (np.abs(ly - (road.pitch_hi - 0.5)) < lw) | (np.abs(ly - (road.pitch_lo + 0.5)) < lw)
    dash = (np.abs(ly - layout.lane_split_pitch) < lw) & (np.mod(lx, 5.0) < 2.5)
    mark = (edge | dash) & np.ones_like(lx, dtype=bool)
    asphalt = np.where(mark[..., None], np.array((0.88, 0.86, 0.78), np.float32), asphalt)
    side[walk:-walk] = asphalt
    img[y0 - walk:y1 + walk, np.arange(x0, x1) % w] = side
    for yaw_edge, outward in ((road.yaw0, -1), (road.yaw0 + road.yaw_span, 1)):
        _portal(img, detail, yaw_edge, outward, road, ppd)


def _portal(img: np.ndarray, detail: np.ndarray, yaw_edge: float, outward: int, road: AngleRect,
            ppd: float) -> None:
    """A concrete tunnel mouth just outside the road zone: cars vanish into its dark opening."""
    width, opening = 7.0, 4.0
    yaw0 = yaw_edge if outward > 0 else yaw_edge - width
    x0 = round((yaw0 % 360.0) * ppd)
    x1 = x0 + round(width * ppd)
    y0, y1 = round((90.0 - road.pitch_hi - 3.0) * ppd), round((90.0 - road.pitch_lo + 0.8) * ppd)
    det = _detail(detail, x0, x1, y0, y1)
    rgb = np.array((0.58, 0.57, 0.54), np.float32) * (0.75 + 0.4 * det[..., None])
    oy0 = round(3.0 * ppd)
    oy1 = rgb.shape[0] - round(0.8 * ppd)
    ow = round(opening * ppd)
    ox0, ox1 = (0, ow) if outward > 0 else (rgb.shape[1] - ow, rgb.shape[1])
    opening_shade = 0.8 + 0.4 * det[oy0:oy1, ox0:ox1, None]
    rgb[oy0:oy1, ox0:ox1] = np.array((0.04, 0.04, 0.05), np.float32) * opening_shade
    rgb[:max(2, int(0.3 * ppd))] *= 0.6
    blit(img, x0, y0, rgb)


def paint_plaza(img: np.ndarray, layout: SiteLayout, detail: np.ndarray) -> None:
    """Stone paving in ground-plane coordinates (tiles shrink with distance), with a kerb."""
    h, w = img.shape[:2]
    ppd = w / 360.0
    x0, x1, y0, y1 = angle_rect_px(layout.plaza, w, h)
    kerb = max(1, int(0.6 * ppd))
    x0, x1, y0, y1 = x0 - kerb, x1 + kerb, y0 - kerb, y1 + kerb
    yaw = np.radians((np.arange(x0, x1, dtype=np.float32) + 0.5) / ppd)[None, :]
    pitch = np.radians(90.0 - (np.arange(y0, y1, dtype=np.float32) + 0.5) / ppd)[:, None]
    px, py, _ = plane_coords(yaw, pitch, 1.0, 50.0)
    tile = 0.3
    tx, ty = np.floor(px / tile), np.floor(py / tile)
    shade = 0.85 + 0.25 * np.mod(np.sin(tx * 12.9898 + ty * 78.233) * 43758.5453, 1.0)
    grout = (np.mod(px / tile, 1.0) < 0.07) | (np.mod(py / tile, 1.0) < 0.07)
    det = _detail(detail, x0, x1, y0, y1)
    rgb = np.array((0.70, 0.65, 0.57), np.float32) * (shade * (0.8 + 0.35 * det))[..., None]
    rgb[grout] *= 0.62
    rgb[:kerb] = rgb[-kerb:] = rgb[:, :kerb] = rgb[:, -kerb:] = 0.45
    blit(img, x0, y0, rgb)


def paint_lake(img: np.ndarray, layout: SiteLayout, rng: np.random.Generator, detail: np.ndarray) -> None:
    """Water with horizontal ripple streaks and a sandy shore, rounded-rectangle shaped."""
    h, w = img.shape[:2]
    ppd = w / 360.0
    x0, x1, y0, y1 = angle_rect_px(layout.lake, w, h)
    shore = max(1, int(0.5 * ppd))
    x0, x1, y0, y1 = x0 - 3 * shore, x1 + 3 * shore, y0 - shore, y1 + shore
    ny, nx = y1 - y0, x1 - x0
    u = (np.arange(nx, dtype=np.float32)[None, :] + 0.5) / nx * 2 - 1
    v = (np.arange(ny, dtype=np.float32)[:, None] + 0.5) / ny * 2 - 1
    r = np.abs(u) ** 6 + np.abs(v) ** 6
    water_a = smoothstep(0.85, 0.7, r)
    sand_a = smoothstep(1.0, 0.9, r)
    streak = cv2.resize(rng.random((max(4, ny // 3), 6)).astype(np.float32), (nx, ny),
                        interpolation=cv2.INTER_CUBIC)
    det = _detail(detail, x0, x1, y0, y1)
    depth = (v + 1) / 2
    water = (np.array((0.55, 0.68, 0.78), np.float32) * (1 - depth[..., None])
             + np.array((0.12, 0.28, 0.36), np.float32) * depth[..., None])
    water = water * (0.8 + 0.3 * streak[..., None] + 0.1 * det[..., None])
    sand = np.array((0.72, 0.66, 0.50), np.float32) * (0.85 + 0.25 * det[..., None])
    base = region(img, x0, x1, y0, y1)
    out = base * (1 - sand_a[..., None]) + sand * sand_a[..., None]
    out = out * (1 - water_a[..., None]) + water * water_a[..., None]
    blit(img, x0, y0, out)


def paint_trees(img: np.ndarray, layout: SiteLayout, rng: np.random.Generator, detail: np.ndarray,
                count: int = 170) -> None:
    """Trees scattered over the ground, far ones first, never overlapping a dynamic zone."""
    ppd = img.shape[1] / 360.0
    zones = list(layout.zones().values())
    trees: list[tuple[float, float, float]] = []
    while len(trees) < count:
        yaw, base = rng.uniform(0, 360), -rng.uniform(0.3, 16.0)
        size = min(14.0, 20.0 * math.tan(math.radians(-base)) ** 0.55)  # nearer trees look bigger
        half = size * 0.45 + 1.0
        if any(_overlaps(z, yaw - half, 2 * half, base - 0.5, base + size * 1.4 + 1.0) for z in zones):
            continue
        trees.append((base, yaw, size))
    trees.sort(reverse=True)  # highest base pitch = farthest first
    greens = np.array(((0.18, 0.33, 0.14), (0.24, 0.40, 0.16), (0.14, 0.26, 0.12), (0.30, 0.42, 0.20)),
                      np.float32)
    for base, yaw, size in trees:
        s = max(3, int(size * ppd))
        cw, ch = int(s * 0.9) + 4, int(s * 1.35) + 4
        mask = np.zeros((ch, cw), np.uint8)
        trunk_w = max(1, s // 10)
        cv2.rectangle(mask, (cw // 2 - trunk_w, int(s * 0.8)), (cw // 2 + trunk_w, ch - 2), 2, -1)
        for _ in range(5):
            r = int(s * rng.uniform(0.22, 0.36))
            c = (int(cw / 2 + rng.uniform(-0.18, 0.18) * s), int(s * rng.uniform(0.3, 0.55)))
            cv2.circle(mask, c, max(r, 1), 1, -1, lineType=cv2.LINE_8)
        x0 = round((yaw % 360.0) * ppd) - cw // 2
        y0 = round((90.0 - base) * ppd) - ch + 2
        det = _detail(detail, x0, x0 + cw, y0, y0 + ch)
        if det.shape[0] != ch:
            continue
        leaf = greens[rng.integers(len(greens))] * (0.55 + 0.8 * det[..., None])
        bark = np.array((0.30, 0.22, 0.14), np.float32) * (0.7 + 0.5 * det[..., None])
        rgb = np.where((mask == 1)[..., None], leaf, bark)
        blit(img, x0, y0, rgb, (mask > 0).astype(np.float32))


def _overlaps(z: AngleRect, yaw0: float, span: float, lo: float, hi: float) -> bool:
    if hi <= z.pitch_lo or lo >= z.pitch_hi:
        return False
    d = (yaw0 - z.yaw0) % 360.0
    return d < z.yaw_span or d + span > 360.0
