"""`SimCamera`: a stateful simulated PTZ camera over a `SimWorld`, with a simulated clock and faults.

It behaves like the real drivers where it matters to callers: moves take time to settle (on the
simulated clock, so runs are reproducible and fast; optionally also in wall-clock time), poses are
wrapped/clamped to the camera's ranges, and, when asked, calls fail the ways real cameras fail
(timeouts, 200 answers with an error text, corrupt JPEGs) so retry and error paths can be tested.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from shared.pose import Pose, PoseRanges

from .world import SimWorld

FAULT_KINDS: tuple[str, ...] = ("timeout", "error_body", "garbage_image")
_ERROR_BODY = "Driver is initiating. Please try again later."


class SimFault(Exception):
    """An injected camera fault. `kind` is one of FAULT_KINDS; `payload` holds what a real camera
    would have sent (the error text, or the corrupt image bytes) so drivers can map it faithfully."""

    def __init__(self, kind: str, message: str, payload: bytes | None = None) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.payload = payload


@dataclass(frozen=True)
class SimCameraConfig:
    """Timing and fault behaviour of the simulated camera (all times in seconds)."""

    home: Pose = field(default_factory=lambda: Pose(180.0, 0.0, 1.0))
    settle_base_s: float = 0.5        # every move costs this much simulated time ...
    settle_per_deg_s: float = 0.01    # ... plus this per degree of the larger of pan/tilt travel ...
    settle_per_zoom_s: float = 0.02   # ... plus this per unit of magnification changed
    snapshot_s: float = 0.04          # simulated time one snapshot takes
    start_time_s: float = 0.0
    move_latency_s: float = 0.0       # real (wall-clock) sleep per move, to exercise timeouts
    fault_rate: float = 0.0           # probability per call of an injected fault
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    fault_timeout_s: float = 0.05     # a "timeout" fault sleeps this long (wall clock) then raises
    fault_seed: int = 0

    def __post_init__(self) -> None:
        for name in ("settle_base_s", "settle_per_deg_s", "settle_per_zoom_s", "snapshot_s",
                     "move_latency_s", "fault_timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be in [0, 1], got {self.fault_rate}")
        unknown = set(self.fault_kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {list(FAULT_KINDS)}")


class SimClock:
    """Simulated time in seconds. It only moves when advanced, never with the wall clock."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by `seconds` (>= 0) and return the new time."""
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"time can only move forward by a finite amount, got {seconds}")
        with self._lock:
            self._now += float(seconds)
            return self._now


class SimCamera:
    """A simulated PTZ camera: pose state, a simulated clock, snapshots rendered by the world.

    Thread-safe: one operation at a time, like a real camera's control channel. A faulted call
    changes no pose (a timeout still lets simulated time pass).
    """

    def __init__(self, world: SimWorld, config: SimCameraConfig = SimCameraConfig(),
                 clock: SimClock | None = None) -> None:
        self.world = world
        self.config = config
        self.clock = clock if clock is not None else SimClock(config.start_time_s)
        self._pose = world.ranges.apply(config.home)
        self._lock = threading.RLock()
        self._rng = np.random.default_rng(config.fault_seed)
        self.fault_counts: dict[str, int] = {k: 0 for k in FAULT_KINDS}
        self.calls = 0

    @property
    def ranges(self) -> PoseRanges:
        return self.world.ranges

    def now(self) -> float:
        """Current simulated time in seconds."""
        return self.clock.now()

    def position(self) -> Pose:
        """The current pose."""
        with self._lock:
            self._maybe_fault(("timeout", "error_body"))
            return self._pose

    def move_absolute(self, pose: Pose) -> Pose:
        """Move to `pose` (wrapped/clamped to the ranges); returns the pose reached."""
        _check_finite(pose.pan, pose.tilt, pose.zoom)
        with self._lock:
            self._maybe_fault(("timeout", "error_body"))
            return self._move_to(self.ranges.apply(pose))

    def move_relative(self, d_pan: float, d_tilt: float, d_zoom: float) -> Pose:
        """Move by deltas in degrees and magnification units (zoom is additive); returns the pose."""
        _check_finite(d_pan, d_tilt, d_zoom)
        with self._lock:
            self._maybe_fault(("timeout", "error_body"))
            p = self._pose
            return self._move_to(self.ranges.apply(Pose(p.pan + d_pan, p.tilt + d_tilt, p.zoom + d_zoom)))

    def home(self) -> Pose:
        """Move to the configured home pose."""
        return self.move_absolute(self.config.home)

    def snapshot(self, width: int = 224, height: int = 224) -> tuple[np.ndarray, Pose, float]:
        """(RGB uint8 image, pose, simulated capture time); the clock then advances by snapshot_s."""
        with self._lock:
            self._maybe_fault(("timeout", "error_body", "garbage_image"))
            t = self.clock.now()
            image = self.world.render(self._pose, t, width, height)
            self.clock.advance(self.config.snapshot_s)
            return image, self._pose, t

    def snapshot_jpeg(self, width: int = 224, height: int = 224,
                      quality: int = 90) -> tuple[bytes, Pose, float]:
        """Like `snapshot`, but JPEG bytes, as an HTTP camera would answer."""
        image, pose, t = self.snapshot(width, height)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:  # pragma: no cover - cv2 always encodes a valid uint8 image
            raise RuntimeError("JPEG encoding failed")
        return buf.tobytes(), pose, t

    def settle_time(self, a: Pose, b: Pose) -> float:
        """Simulated seconds a move from a to b takes: pan and tilt motors run at the same time."""
        c, r = self.config, self.ranges
        d_pan = abs(b.pan - a.pan)
        if r.pan_wraps:
            span = r.pan_max - r.pan_min
            d_pan = min(d_pan % span, span - d_pan % span)
        travel = max(d_pan, abs(b.tilt - a.tilt))
        return c.settle_base_s + c.settle_per_deg_s * travel + c.settle_per_zoom_s * abs(b.zoom - a.zoom)

    # ---- internals --------------------------------------------------------------------------
    def _move_to(self, target: Pose) -> Pose:
        if self.config.move_latency_s > 0:
            time.sleep(self.config.move_latency_s)
        self.clock.advance(self.settle_time(self._pose, target))
        self._pose = target
        return target

    def _maybe_fault(self, applicable: tuple[str, ...]) -> None:
        """Raise an injected fault with probability fault_rate (seeded, so runs are reproducible)."""
        self.calls += 1
        c = self.config
        kinds = [k for k in c.fault_kinds if k in applicable]
        if c.fault_rate <= 0 or not kinds or self._rng.random() >= c.fault_rate:
            return
        kind = kinds[int(self._rng.integers(len(kinds)))]
        self.fault_counts[kind] += 1
        if kind == "timeout":
            time.sleep(c.fault_timeout_s)
            self.clock.advance(c.fault_timeout_s)
            raise SimFault(kind, f"no answer within {c.fault_timeout_s:.3f} s")
        if kind == "error_body":
            raise SimFault(kind, f"camera answered 200 with an error text: {_ERROR_BODY!r}",
                           payload=_ERROR_BODY.encode())
        self.clock.advance(c.snapshot_s)
        n = int(self._rng.integers(64, 512))
        garbage = b"\xff\xd8\xff\xe0" + self._rng.bytes(n)  # a JPEG header, then noise, no end marker
        raise SimFault(kind, f"camera sent {len(garbage)} bytes that do not decode as an image",
                       payload=garbage)


def _check_finite(*values: float) -> None:
    for v in values:
        if not math.isfinite(v):
            raise ValueError(f"pose values must be finite numbers, got {v}")
