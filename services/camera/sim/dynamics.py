"""Known dynamic content of the simulated site, as a pure function of (seed, simulated time t).

Things change in a few zones only (a busy road, a plaza, a lake, a flock of birds, a blinking sign,
a clock dial, a screen of static), plus a slow global day cycle. Movers show their heading in one
frame (cars' head and tail lights, walkers facing their way with a stride that grows with their
speed, boats' sails and wakes, birds' heads); the sign's chaser bulb and the dial's hand show the
phase of their periods. Knowing exactly where the world changes gives the ground truth for
"is the agent looking where the world model is weak?". Objects are drawn in full-resolution
panorama pixels into a small canvas per zone (the zone's static pixels plus a margin); the renderer
samples those canvases only where a view falls on a zone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from .layout import AngleRect, SiteLayout, angle_rect_px
from .zone_kinds import draw_dial_hand, noise_blocks, sign_face

_WALK_DPS = 1.0  # walking speed (degrees of yaw per second) at which the stride is widest
_SHIFT = 4  # cv2 sub-pixel bits, so objects move smoothly rather than in whole-pixel steps
_ONE = 1 << _SHIFT

ToPx = Callable[[float, float], tuple[float, float]]  # (yaw offset, pitch) deg -> canvas px


@dataclass(frozen=True)
class DynamicsConfig:
    """Rates and counts of the dynamic content. `enabled=False` gives a frozen, evenly lit world."""

    enabled: bool = True
    day_period_s: float = 600.0        # one full day/night cycle of the global illumination
    night_brightness: float = 0.55     # darkest global gain, at half a period
    blink_period_s: float = 4.0        # the sign is lit for the first `blink_duty` of each period ...
    blink_duty: float = 0.5            # ... and its chaser bulb goes once round the panel per period
    dial_period_s: float = 12.0        # one turn of the clock dial's hand
    noise_cell_deg: float = 0.5        # side of one random block of the screen of static
    traffic_speed_dps: float = 9.0     # degrees of yaw per second along the road
    cars_per_lane: int = 7
    people: int = 24
    birds: int = 16

    def __post_init__(self) -> None:
        if min(self.day_period_s, self.blink_period_s, self.dial_period_s, self.noise_cell_deg) <= 0:
            raise ValueError("day_period_s, blink_period_s, dial_period_s and noise_cell_deg must be "
                             "positive")
        if not 0.0 < self.blink_duty < 1.0:
            raise ValueError(f"blink_duty must be in (0, 1), got {self.blink_duty}")
        if not 0.0 < self.night_brightness <= 1.0:
            raise ValueError(f"night_brightness must be in (0, 1], got {self.night_brightness}")


@dataclass(frozen=True)
class ZoneGeometry:
    """A zone in full-resolution panorama pixels, aligned to `align` so mip levels line up.

    The canvas for the zone covers x0-margin .. x0+width+margin (columns wrap) and likewise rows;
    `clip` is the exact (unaligned) box, in canvas coordinates, outside which nothing is drawn.
    """

    name: str
    rect: AngleRect
    x0: int
    y0: int
    width: int
    height: int
    margin: int
    clip: tuple[int, int, int, int]  # cy0, cy1, cx0, cx1


def zone_geometry(name: str, rect: AngleRect, pano_w: int, pano_h: int, align: int) -> ZoneGeometry:
    x0, x1, y0, y1 = angle_rect_px(rect, pano_w, pano_h)
    ax0, ay0 = (x0 // align) * align, (y0 // align) * align
    ax1, ay1 = -(-x1 // align) * align, -(-y1 // align) * align
    margin = 2 * align
    clip = (y0 - ay0 + margin, y1 - ay0 + margin, x0 - ax0 + margin, x1 - ax0 + margin)
    return ZoneGeometry(name, rect, ax0, ay0, ax1 - ax0, ay1 - ay0, margin, clip)


def _rgb(channels: Iterable[float]) -> tuple[int, int, int]:
    """Three colour channels as the int triple OpenCV draws with."""
    red, green, blue = (int(c) for c in channels)
    return red, green, blue


def _pt(x: float, y: float) -> tuple[int, int]:
    return round(x * _ONE), round(y * _ONE)


def _poly(img: np.ndarray, pts: list[tuple[float, float]], color: tuple[int, int, int]) -> None:
    cv2.fillPoly(img, [np.array([_pt(x, y) for x, y in pts], np.int32)], color, cv2.LINE_AA, _SHIFT)


def _circle(img: np.ndarray, x: float, y: float, r: float, color: tuple[int, int, int]) -> None:
    cv2.circle(img, _pt(x, y), max(1, round(r * _ONE)), color, -1, cv2.LINE_AA, _SHIFT)


def _line(img: np.ndarray, a: tuple[float, float], b: tuple[float, float], color: tuple[int, int, int],
          thick: float) -> None:
    cv2.line(img, _pt(*a), _pt(*b), color, max(1, round(thick)), cv2.LINE_AA, _SHIFT)


def _car(img: np.ndarray, x: float, y: float, length: float, h: float, color: tuple[int, int, int],
         direction: int) -> None:
    """A side-on car with body, cabin, windows, wheels and lights; (x, y) is its top-left corner."""
    dark = _rgb(c * 0.6 for c in color)
    _poly(img, [(x, y + 0.42 * h), (x + length, y + 0.42 * h), (x + length, y + 0.85 * h),
                (x, y + 0.85 * h)], color)
    front, back = (0.78, 0.22) if direction > 0 else (0.22, 0.78)
    lo, hi = min(front, back), max(front, back)
    slope_lo = 0.08 if direction > 0 else 0.0
    slope_hi = 0.0 if direction > 0 else 0.08
    _poly(img, [(x + (lo + slope_lo) * length, y + 0.05 * h), (x + (hi - slope_hi) * length, y + 0.05 * h),
                (x + (hi + 0.06) * length, y + 0.44 * h), (x + (lo - 0.06) * length, y + 0.44 * h)], dark)
    _poly(img, [(x + (lo + slope_lo + 0.03) * length, y + 0.12 * h),
                (x + (hi - slope_hi - 0.03) * length, y + 0.12 * h),
                (x + (hi + 0.01) * length, y + 0.40 * h), (x + (lo - 0.01) * length, y + 0.40 * h)],
          (40, 55, 70))
    for wx in (0.2, 0.8):
        _circle(img, x + wx * length, y + 0.84 * h, 0.15 * h, (18, 18, 18))
        _circle(img, x + wx * length, y + 0.84 * h, 0.06 * h, (150, 150, 150))
    head_x = x + length - 0.05 * length if direction > 0 else x
    tail_x = x if direction > 0 else x + length - 0.05 * length
    _poly(img, [(head_x, y + 0.47 * h), (head_x + 0.05 * length, y + 0.47 * h),
                (head_x + 0.05 * length, y + 0.58 * h), (head_x, y + 0.58 * h)], (255, 240, 180))
    _poly(img, [(tail_x, y + 0.47 * h), (tail_x + 0.05 * length, y + 0.47 * h),
                (tail_x + 0.05 * length, y + 0.58 * h), (tail_x, y + 0.58 * h)], (200, 20, 20))


def _person(img: np.ndarray, x: float, y: float, h: float, shirt: tuple[int, int, int],
            legs: tuple[int, int, int], stride: float, facing: int) -> None:
    """A walking person, feet at (x, y), height h pixels; `stride` in [-1, 1] swings the legs and
    the face (skin in front of dark hair) looks the way the person walks (`facing` +1: right)."""
    w = 0.32 * h
    hip = (x, y - 0.48 * h)
    for s in (stride, -stride):
        _line(img, hip, (x + 0.18 * h * s, y), legs, 0.11 * h)
    _poly(img, [(x - w / 2, y - 0.82 * h), (x + w / 2, y - 0.82 * h), (x + w * 0.42, y - 0.45 * h),
                (x - w * 0.42, y - 0.45 * h)], shirt)
    _circle(img, x - facing * 0.03 * h, y - 0.9 * h, 0.1 * h, (52, 36, 26))
    _circle(img, x + facing * 0.035 * h, y - 0.89 * h, 0.075 * h, (224, 182, 150))


class SceneDynamics:
    """Moving objects, the blinking sign and the day cycle for one site layout and seed."""

    def __init__(self, layout: SiteLayout, pano_width: int, pano_height: int, seed: int,
                 config: DynamicsConfig = DynamicsConfig(), align: int = 8) -> None:
        self.layout, self.config, self.seed = layout, config, seed
        self.ppd = pano_width / 360.0
        self.pano_width, self.pano_height = pano_width, pano_height
        self.zones = tuple(zone_geometry(n, r, pano_width, pano_height, align)
                           for n, r in layout.dynamic_zones().items())
        rng = np.random.default_rng(np.random.SeedSequence([abs(int(seed)), int(seed < 0), 0xD1A]))
        palette = np.array([(200, 30, 30), (30, 70, 170), (230, 230, 225), (30, 30, 32), (200, 170, 40),
                            (90, 140, 90), (150, 150, 155), (120, 40, 110)])
        road = layout.road
        self._lanes = []
        for lane, (lo, hi, direction) in enumerate(((layout.lane_split_pitch, road.pitch_hi, 1),
                                                    (road.pitch_lo, layout.lane_split_pitch, -1))):
            car_h = 0.72 * (hi - lo)
            car_len = 2.1 * car_h
            period = road.yaw_span + car_len
            gap = period / config.cars_per_lane
            speed = config.traffic_speed_dps * rng.uniform(0.8, 1.2) * (1.0 if lane == 0 else 1.15)
            cars = [(i * gap + rng.uniform(0, 0.4) * (gap - car_len),
                     _rgb(palette[rng.integers(len(palette))])) for i in range(config.cars_per_lane)]
            self._lanes.append((lo, hi, direction, car_h, car_len, period, speed, cars))
        p = layout.plaza
        self._people = []
        for _ in range(config.people):  # Lissajous walks that stay inside the plaza
            ax = rng.uniform(0.15, 0.45)
            self._people.append((rng.uniform(ax, 1.0 - ax), ax, rng.uniform(0.02, 0.06),
                                 rng.uniform(0.03, 0.08), rng.uniform(0, 2 * math.pi),
                                 rng.uniform(0, 2 * math.pi),
                                 _rgb(rng.integers(30, 240, 3)), _rgb(rng.integers(20, 90, 3))))
        self._plaza_feet = (p.pitch_lo + 0.5, p.pitch_hi - 4.5)
        # (waterline as a fraction of the lake's height, size in degrees, period s, phase)
        self._boats = [(0.62, 0.55, rng.uniform(40.0, 60.0), rng.uniform()),
                       (0.22, 1.0, rng.uniform(60.0, 90.0), rng.uniform())]
        self._birds = [(rng.normal(0, 3.5), rng.normal(0, 1.4), rng.uniform(0, 2 * math.pi),
                        rng.uniform(2.5, 4.0)) for _ in range(config.birds)]
        self._flock = (rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi))

    # ---- global effects -------------------------------------------------------------------
    def light_on(self, t: float) -> bool:
        """Whether the sign is lit at time t (lit during the first `blink_duty` of each period)."""
        c = self.config
        return c.enabled and (t / c.blink_period_s) % 1.0 < c.blink_duty

    def illumination(self, t: float) -> np.ndarray:
        """Per-channel (R, G, B) gain of the day cycle: 1 at t=0, dimmer and bluer towards night."""
        c = self.config
        if not c.enabled:
            return np.ones(3, np.float32)
        day = 0.5 + 0.5 * math.cos(2.0 * math.pi * t / c.day_period_s)
        b = c.night_brightness + (1.0 - c.night_brightness) * day
        return np.array([b * (1.0 - 0.08 * (1.0 - day)), b, b * (1.0 + 0.06 * (1.0 - day))], np.float32)

    # ---- drawing --------------------------------------------------------------------------
    def draw(self, zone: ZoneGeometry, static: np.ndarray, t: float) -> np.ndarray:
        """The zone's canvas at time t: a copy of `static` (its static canvas) with objects drawn."""
        canvas = static.copy()
        if not self.config.enabled:
            return canvas
        to_px = self._to_canvas(zone)
        getattr(self, f"_draw_{zone.name}")(canvas, zone.rect, to_px, t)
        cy0, cy1, cx0, cx1 = zone.clip
        out = static.copy()
        out[cy0:cy1, cx0:cx1] = canvas[cy0:cy1, cx0:cx1]
        return out

    def _to_canvas(self, zone: ZoneGeometry) -> ToPx:
        """Map zone-relative (yaw offset from rect.yaw0, pitch) in degrees to canvas pixels."""
        ppd, m = self.ppd, zone.margin
        ox = (zone.rect.yaw0 % 360.0) * ppd - zone.x0 + m
        oy = -zone.y0 + m

        def to_px(dyaw: float, pitch: float) -> tuple[float, float]:
            return ox + dyaw * ppd, oy + (90.0 - pitch) * ppd
        return to_px

    def _draw_road(self, img: np.ndarray, rect: AngleRect, to_px: ToPx, t: float) -> None:
        for lo, hi, direction, car_h, car_len, period, speed, cars in self._lanes:
            top = hi - 0.12 * (hi - lo)
            for phase, color in cars:
                u = (phase + speed * t) % period
                left = u - car_len if direction > 0 else rect.yaw_span - u
                x, y = to_px(left, top)
                _car(img, x, y, car_len * self.ppd, car_h * self.ppd, color, direction)

    def _draw_plaza(self, img: np.ndarray, rect: AngleRect, to_px: ToPx, t: float) -> None:
        lo, hi = self._plaza_feet
        span = rect.yaw_span
        order = []
        for cx, ax, wx, wy, px, py, shirt, legs in self._people:
            fx = span * (0.05 + 0.9 * (cx + ax * math.sin(wx * t + px)))
            fy = lo + (hi - lo) * (0.5 + 0.5 * math.sin(wy * t + py))
            vx = span * 0.9 * ax * wx * math.cos(wx * t + px)  # degrees of yaw per second
            order.append((fy, fx, shirt, legs, 2.0 * math.pi * 1.4 * t + px, vx))
        for fy, fx, shirt, legs, ph, vx in sorted(order, reverse=True):  # far (higher pitch) first
            h = 8.0 * math.tan(math.radians(-fy)) ** 0.55 * self.ppd  # nearer people look bigger
            x, y = to_px(fx, fy)
            stride = min(1.0, abs(vx) / _WALK_DPS) * math.sin(ph)  # faster walkers stride wider
            _person(img, x, y, h, shirt, legs, stride, 1 if vx >= 0 else -1)

    def _draw_lake(self, img: np.ndarray, rect: AngleRect, to_px: ToPx, t: float) -> None:
        """Two sailing boats going to and fro, the nearer one larger (and drawn last)."""
        ppd = self.ppd
        height = rect.pitch_hi - rect.pitch_lo
        for level, size, period, phase0 in self._boats:
            phase = (t / period + phase0) % 1.0
            pos = 2 * phase if phase < 0.5 else 2 - 2 * phase
            direction = 1 if phase < 0.5 else -1
            length, water = 2.8 * size, rect.pitch_lo + level * height
            travel = rect.yaw_span - 2.0 - length
            left = 1.0 + pos * travel
            x, y = to_px(left, water)
            hull = 0.4 * size * ppd
            # the wake trails the stern, as long as the boat sails in 1.5 s: heading and speed show
            stern = x if direction > 0 else x + length * ppd
            wake = 1.5 * (2.0 * travel / period) * ppd
            _poly(img, [(stern, y - 0.9 * hull), (stern - direction * wake, y - 0.1 * hull),
                        (stern, y - 0.2 * hull)], (226, 236, 240))
            _poly(img, [(x, y - hull), (x + length * ppd, y - hull), (x + length * ppd - hull, y),
                        (x + hull, y)], (92, 52, 30))
            mast = x + (0.45 if direction > 0 else 0.55) * length * ppd
            top = y - 2.1 * size * ppd
            _line(img, (mast, y - hull), (mast, top), (60, 40, 30), 0.08 * size * ppd)
            tip = mast + direction * 1.0 * size * ppd
            _poly(img, [(mast, top), (mast, y - 1.2 * hull), (tip, y - 1.2 * hull)], (245, 245, 240))

    def _draw_birds(self, img: np.ndarray, rect: AngleRect, to_px: ToPx, t: float) -> None:
        a, b = self._flock
        cx = rect.yaw_span * (0.5 + 0.38 * math.sin(0.12 * t + a))
        cy = rect.pitch_lo + (rect.pitch_hi - rect.pitch_lo) * (0.5 + 0.3 * math.sin(0.17 * t + b))
        # the flock's velocity in canvas pixels (pitch up is y down): each bird's head leads
        vx = rect.yaw_span * 0.38 * 0.12 * math.cos(0.12 * t + a)
        vy = -(rect.pitch_hi - rect.pitch_lo) * 0.3 * 0.17 * math.cos(0.17 * t + b)
        norm = math.hypot(vx, vy) or 1.0
        hx, hy = vx / norm, vy / norm
        span = 0.8 * self.ppd
        for dx, dy, ph, freq in self._birds:
            x, y = to_px(cx + dx, cy + dy)
            flap = math.sin(2 * math.pi * freq * t + ph)
            wing = (x - span, y - flap * 0.5 * span), (x + span, y - flap * 0.5 * span)
            _line(img, wing[0], (x, y), (35, 35, 40), 0.14 * self.ppd)
            _line(img, (x, y), wing[1], (35, 35, 40), 0.14 * self.ppd)
            _line(img, (x, y), (x + 0.45 * span * hx, y + 0.45 * span * hy), (35, 35, 40), 0.14 * self.ppd)
            _circle(img, x + 0.45 * span * hx, y + 0.45 * span * hy, 0.12 * self.ppd, (200, 120, 30))

    def _box(self, name: str, rect: AngleRect) -> tuple[int, int, int, int]:
        """A zone's exact box in its canvas: (x0, y0, width, height)."""
        x0, x1, y0, y1 = angle_rect_px(rect, self.pano_width, self.pano_height)
        zone = next(z for z in self.zones if z.name == name)
        return x0 - zone.x0 + zone.margin, y0 - zone.y0 + zone.margin, x1 - x0, y1 - y0

    def _draw_sign(self, img: np.ndarray, rect: AngleRect, to_px: ToPx, t: float) -> None:
        cx0, cy0, w, h = self._box("sign", rect)
        chase = (t / self.config.blink_period_s) % 1.0
        img[cy0:cy0 + h, cx0:cx0 + w] = sign_face(w, h, lit=self.light_on(t), chase=chase)

    def _draw_dial(self, img: np.ndarray, rect: AngleRect, to_px: ToPx, t: float) -> None:
        cx0, cy0, w, h = self._box("dial", rect)
        draw_dial_hand(img, cx0, cy0, w, h, (t / self.config.dial_period_s) % 1.0)

    def _draw_screen(self, img: np.ndarray, rect: AngleRect, to_px: ToPx, t: float) -> None:
        cx0, cy0, w, h = self._box("screen", rect)
        cell = max(1, round(self.config.noise_cell_deg * self.ppd))
        img[cy0:cy0 + h, cx0:cx0 + w] = noise_blocks(self.seed, t, h, w, cell)
