"""Where things are in the simulated site, in panorama angles.

The static panorama (roads, plaza, lake, the sign's panel) and the dynamic content (cars, people,
boat, birds, the sign, the clock, the screen of static) must agree on where each region is, so both
read one `SiteLayout`. Angles are yaw in degrees (0..360, increasing to the right, wrapping) and
pitch in degrees (positive up, 0 = horizon). The layout depends only on the seed.

Every zone has a kind (`shared.scene.ZONE_KINDS`), the ground truth of what a world model can learn
there: "movers" (objects whose heading and speed show in one frame), "periodic" (a phase that shows
in one frame), "noise" (fresh random content at every instant), "detail" (static fine structure that
resolves only at high zoom); everything outside the zones is "static". All zones lie within tilt
-15..25 degrees, so every camera range of the project (tilt -20..30 or wider) reaches each of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AngleRect:
    """A yaw/pitch rectangle of the panorama; `yaw0 + yaw_span` may run past 360 (it wraps)."""

    yaw0: float
    yaw_span: float
    pitch_lo: float
    pitch_hi: float

    def __post_init__(self) -> None:
        if not 0 < self.yaw_span <= 360:
            raise ValueError(f"yaw_span must be in (0, 360], got {self.yaw_span}")
        if not self.pitch_hi > self.pitch_lo:
            raise ValueError(f"pitch range is empty: {self.pitch_lo}..{self.pitch_hi}")

    @property
    def centre(self) -> tuple[float, float]:
        """(yaw, pitch) of the middle of the rectangle, yaw in [0, 360)."""
        return ((self.yaw0 + self.yaw_span / 2) % 360.0, (self.pitch_lo + self.pitch_hi) / 2)

    def contains(self, yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
        """Vectorised membership test for angles in degrees."""
        dy = np.mod(np.asarray(yaw) - self.yaw0, 360.0)
        pitch = np.asarray(pitch)
        return (dy < self.yaw_span) & (pitch >= self.pitch_lo) & (pitch < self.pitch_hi)


@dataclass(frozen=True)
class SiteLayout:
    """The dynamic regions of a site plus the static landmarks drawn around them.

    Zone sizes are chosen so that a uniformly random pose over the default ranges is centred on a
    zone in roughly one case in ten: the world changes in a few places, not everywhere.
    """

    road: AngleRect          # two lanes of traffic, split at `lane_split_pitch`
    lane_split_pitch: float
    plaza: AngleRect         # people walking
    lake: AngleRect          # a boat sailing to and fro
    birds: AngleRect         # a flock circling in the sky above the lake
    sign: AngleRect          # a blinking sign on a building, with a chaser bulb showing its phase
    dial: AngleRect          # a clock face on a tower, its hand turning once per `dial_period_s`
    screen: AngleRect        # a screen of static: random blocks, fresh at every instant
    board: AngleRect         # a notice board of fine print and mesh
    town_yaw0: float         # buildings stand on the horizon from here ...
    town_span: float         # ... over this many degrees

    def zones(self) -> dict[str, AngleRect]:
        """Every zone of the site, dynamic or not (the regions of the ground truth)."""
        return {"road": self.road, "plaza": self.plaza, "lake": self.lake, "birds": self.birds,
                "sign": self.sign, "dial": self.dial, "screen": self.screen, "board": self.board}

    def dynamic_zones(self) -> dict[str, AngleRect]:
        """The zones where something moves or changes at some time."""
        return {n: r for n, r in self.zones().items() if ZONE_KIND[n] != "detail"}


# The kind of each zone (a value of shared.scene.ZONE_KINDS).
ZONE_KIND: dict[str, str] = {"road": "movers", "plaza": "movers", "lake": "movers", "birds": "movers",
                             "sign": "periodic", "dial": "periodic", "screen": "noise",
                             "board": "detail"}


def site_layout(seed: int) -> SiteLayout:
    """The layout for a seed: a fixed arrangement rotated by a seed-dependent yaw.

    Seed 0 puts the lake and the flock across the 0/360 seam, so the wrap is always exercised.
    """
    rot = (45.0 + 137.507764 * seed) % 360.0
    return SiteLayout(
        road=AngleRect(rot + 35.0, 150.0, -15.0, -3.0),
        lane_split_pitch=-9.0,
        plaza=AngleRect(rot + 203.0, 70.0, -15.0, -4.0),
        lake=AngleRect(rot + 305.0, 40.0, -4.0, -0.6),
        birds=AngleRect(rot + 298.0, 60.0, 8.0, 24.0),
        sign=AngleRect(rot + 190.0, 9.0, 2.5, 7.5),
        dial=AngleRect(rot + 160.0, 7.0, 5.0, 12.0),
        screen=AngleRect(rot + 228.0, 10.0, 1.5, 7.5),
        board=AngleRect(rot + 252.0, 8.0, 0.5, 5.5),
        town_yaw0=rot + 150.0,
        town_span=125.0,
    )


def angle_rect_px(rect: AngleRect, width: int, height: int) -> tuple[int, int, int, int]:
    """Pixel box (x0, x1, y0, y1) of an angle rectangle; x may run past `width` (wraps)."""
    ppd_x, ppd_y = width / 360.0, height / 180.0
    x0 = math.floor((rect.yaw0 % 360.0) * ppd_x)
    x1 = x0 + max(1, round(rect.yaw_span * ppd_x))
    y0 = math.floor((90.0 - rect.pitch_hi) * ppd_y)
    y1 = max(y0 + 1, math.ceil((90.0 - rect.pitch_lo) * ppd_y))
    return x0, x1, y0, y1
