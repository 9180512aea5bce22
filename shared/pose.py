"""Camera poses: ranges, wrap/clamp, normalisation, and the 21 discrete actions.

One module so that the camera service, the dreamer and the agent apply moves the same way
(the original applied them unclamped in dreams and clamped on the camera, so dreams drifted into
poses no camera can reach).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Pose:
    """An absolute camera pose: pan and tilt in degrees, zoom as optical magnification (1 = widest)."""

    pan: float
    tilt: float
    zoom: float

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.pan, self.tilt, self.zoom)


@dataclass(frozen=True)
class PoseRanges:
    """What a camera can reach. Pan wraps when `pan_wraps` (a full circle), else it clamps."""

    pan_min: float = 0.0
    pan_max: float = 360.0
    tilt_min: float = -20.0
    tilt_max: float = 90.0
    zoom_min: float = 1.0
    zoom_max: float = 20.0
    pan_wraps: bool = True

    def __post_init__(self) -> None:
        for lo, hi, name in (
            (self.pan_min, self.pan_max, "pan"),
            (self.tilt_min, self.tilt_max, "tilt"),
            (self.zoom_min, self.zoom_max, "zoom"),
        ):
            if not hi > lo:
                raise ValueError(f"{name} range is empty: min {lo} must be below max {hi}")
        if self.zoom_min <= 0:
            raise ValueError(f"zoom_min must be positive (zoom is a magnification), got {self.zoom_min}")

    def wrap_pan(self, pan: float) -> float:
        if self.pan_wraps:
            span = self.pan_max - self.pan_min
            return self.pan_min + (pan - self.pan_min) % span
        return min(max(pan, self.pan_min), self.pan_max)

    def apply(self, pose: Pose) -> Pose:
        """The pose the camera actually reaches: pan wrapped, tilt and zoom clamped."""
        return Pose(
            pan=self.wrap_pan(pose.pan),
            tilt=min(max(pose.tilt, self.tilt_min), self.tilt_max),
            zoom=min(max(pose.zoom, self.zoom_min), self.zoom_max),
        )

    def check(self, pose: Pose) -> list[str]:
        """Human-readable reasons why `pose` is outside the ranges (empty when it is inside)."""
        problems = []
        for value, name in ((pose.pan, "pan"), (pose.tilt, "tilt"), (pose.zoom, "zoom")):
            if not math.isfinite(value):
                problems.append(f"{name} must be a finite number, got {value}")
        if problems:
            return problems
        if not self.pan_min <= pose.pan <= self.pan_max:
            problems.append(f"pan {pose.pan} is outside [{self.pan_min}, {self.pan_max}]")
        if not self.tilt_min <= pose.tilt <= self.tilt_max:
            problems.append(f"tilt {pose.tilt} is outside [{self.tilt_min}, {self.tilt_max}]")
        if not self.zoom_min <= pose.zoom <= self.zoom_max:
            problems.append(f"zoom {pose.zoom} is outside [{self.zoom_min}, {self.zoom_max}]")
        return problems

    def move(self, pose: Pose, d_pan: float, d_tilt: float, d_zoom: float) -> Pose:
        """Relative move in camera units (degrees, added magnification), wrapped and clamped."""
        return self.apply(Pose(pose.pan + d_pan, pose.tilt + d_tilt, pose.zoom + d_zoom))

    def check_delta(self, d_pan: float, d_tilt: float, d_zoom: float) -> list[str]:
        """Reasons why a relative move is not sensible (larger than the whole range)."""
        problems = []
        for value, span, name in ((d_pan, self.pan_max - self.pan_min, "pan"),
                                  (d_tilt, self.tilt_max - self.tilt_min, "tilt"),
                                  (d_zoom, self.zoom_max - self.zoom_min, "zoom")):
            if not math.isfinite(value):
                problems.append(f"{name} must be a finite number, got {value}")
            elif abs(value) > span:
                problems.append(f"relative {name} {value} exceeds the whole {name} range ({span})")
        return problems


def normalise(pose: Pose, ranges: PoseRanges) -> np.ndarray:
    """Pose -> 4 features in [-1, 1]: sin(pan), cos(pan), tilt scaled, log-zoom scaled.

    Pan as sin/cos so 359 deg and 1 deg are neighbours; zoom in log units so that doubling the
    magnification is the same step everywhere in the range (Axis zoom counts up to 9999 units).
    """
    frac = (pose.pan - ranges.pan_min) / (ranges.pan_max - ranges.pan_min)
    angle = 2.0 * math.pi * frac if ranges.pan_wraps else math.pi * (frac - 0.5)
    tilt = 2.0 * (pose.tilt - ranges.tilt_min) / (ranges.tilt_max - ranges.tilt_min) - 1.0
    lz = math.log(pose.zoom / ranges.zoom_min) / math.log(ranges.zoom_max / ranges.zoom_min)
    return np.array([math.sin(angle), math.cos(angle), tilt, 2.0 * lz - 1.0], dtype=np.float32)


def normalise_batch(poses: np.ndarray, ranges: PoseRanges) -> np.ndarray:
    """Vectorised `normalise` for an (N, 3) array of (pan, tilt, zoom)."""
    poses = np.asarray(poses, dtype=np.float64)
    frac = (poses[:, 0] - ranges.pan_min) / (ranges.pan_max - ranges.pan_min)
    angle = 2.0 * np.pi * frac if ranges.pan_wraps else np.pi * (frac - 0.5)
    tilt = 2.0 * (poses[:, 1] - ranges.tilt_min) / (ranges.tilt_max - ranges.tilt_min) - 1.0
    lz = np.log(poses[:, 2] / ranges.zoom_min) / math.log(ranges.zoom_max / ranges.zoom_min)
    return np.stack([np.sin(angle), np.cos(angle), tilt, 2.0 * lz - 1.0], axis=1).astype(np.float32)


@dataclass(frozen=True)
class Action:
    """One discrete move of the original's action set, in its raw units (before scaling)."""

    name: str
    d_pan: float
    d_tilt: float
    d_zoom: float


# The original's 21 moves, in its raw units: one line per kind of move.
ACTIONS: tuple[Action, ...] = (
    Action("noop", 0.0, 0.0, 0.0),
    Action("left", -0.1, 0.0, 0.0), Action("right", 0.1, 0.0, 0.0),
    Action("up", 0.0, 0.1, 0.0), Action("down", 0.0, -0.1, 0.0),
    Action("up_left", -0.1, 0.1, 0.0), Action("up_right", 0.1, 0.1, 0.0),
    Action("down_left", -0.1, -0.1, 0.0), Action("down_right", 0.1, -0.1, 0.0),
    Action("zoom_in", 0.0, 0.0, 0.1), Action("zoom_out", 0.0, 0.0, -0.1),
    Action("long_left", -1.0, 0.0, 0.0), Action("long_right", 1.0, 0.0, 0.0),
    Action("long_up", 0.0, 1.0, 0.0), Action("long_down", 0.0, -1.0, 0.0),
    Action("long_zoom_in", 0.0, 0.0, 0.2), Action("long_zoom_out", 0.0, 0.0, -0.2),
    Action("jump_left", -5.0, 0.0, 0.0), Action("jump_right", 5.0, 0.0, 0.0),
    Action("jump_up", 0.0, 3.0, 0.0), Action("jump_down", 0.0, -3.0, 0.0),
)
N_ACTIONS = len(ACTIONS)
NOOP = 0  # the index of holding still


@dataclass(frozen=True)
class ActionScale:
    """How raw action units become degrees and zoom steps.

    The original multiplies pan/tilt by 2 (so a jump is 10 deg of pan) and zoom by a brand factor.
    Zoom here is applied as a log step: zoom *= exp(zoom_log_step * d_zoom), which behaves the same
    at 1x and at 30x, unlike the original's additive device units.
    """

    pan_tilt_deg: float = 2.0
    zoom_log_step: float = 2.0


def apply_action(pose: Pose, action: Action | int, ranges: PoseRanges,
                 scale: ActionScale = ActionScale()) -> Pose:
    """The pose after `action`, wrapped and clamped to `ranges`."""
    a = ACTIONS[action] if isinstance(action, int) else action
    zoom = pose.zoom * math.exp(scale.zoom_log_step * a.d_zoom)
    return ranges.apply(Pose(pose.pan + scale.pan_tilt_deg * a.d_pan,
                             pose.tilt + scale.pan_tilt_deg * a.d_tilt, zoom))


def action_deltas(scale: ActionScale = ActionScale()) -> np.ndarray:
    """(21, 3) array of (d_pan deg, d_tilt deg, d_log_zoom) for vectorised rollouts."""
    return np.array([(scale.pan_tilt_deg * a.d_pan, scale.pan_tilt_deg * a.d_tilt,
                      scale.zoom_log_step * a.d_zoom) for a in ACTIONS], dtype=np.float32)


def random_pose(rng, ranges: PoseRanges) -> Pose:
    """Uniform pan and tilt; zoom log-uniform, so wide and narrow views are equally likely.

    `rng` is a `random.Random` or a `numpy.random.Generator` (both have `uniform`).
    """
    zoom = math.exp(rng.uniform(math.log(ranges.zoom_min), math.log(ranges.zoom_max)))
    return Pose(float(rng.uniform(ranges.pan_min, ranges.pan_max)),
                float(rng.uniform(ranges.tilt_min, ranges.tilt_max)), float(zoom))
