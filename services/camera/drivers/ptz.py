"""What every HTTP PTZ driver does the same way: settle, sharpness, pan frames, snapshots.

A protocol driver (Hanwha, Axis, ONVIF) only says how to send an absolute or relative move, how to
read the position and how to fetch a JPEG, all in our units (pan/tilt degrees in the configured
frame, zoom as magnification). This class turns those into the `CameraDriver` contract:

- A move returns only when the camera has settled: the position is polled every `settle_poll_s`
  until it reaches the target, with a deadline (the original busy-waited without one).
- Relative moves are clamped to the configured ranges before they are sent, so the camera never
  leaves the ranges the world model normalises poses with.
- The first frame after a move can be checked for motion blur (variance of the Laplacian, as the
  original did) with a bounded number of extra frames; if none is sharp enough the sharpest is kept
  and a warning logged, because a featureless view (sky, fog) is never "sharp" and must not stall a
  sweep.
"""

from __future__ import annotations

import logging
import math
import time
from abc import abstractmethod
from datetime import UTC, datetime

import cv2
import numpy as np

from services.camera.drivers.base import CameraDriver, CameraError, CameraTimeout, DriverInfo, Snapshot
from services.camera.drivers.http import ALWAYS, IDEMPOTENT, CameraHttp
from services.camera.drivers.options import DriverOptions
from shared.pose import Pose, PoseRanges

log = logging.getLogger(__name__)


def to_device_pan(pan: float, device_min: float) -> float:
    """Our pan (any frame) in a device's 360-degree frame starting at `device_min`."""
    return device_min + (pan - device_min) % 360.0


def from_device_pan(pan: float, ranges: PoseRanges, eps: float = 1e-6) -> float:
    """A device's pan in the configured frame: the equivalent angle inside the ranges, if any."""
    for candidate in (pan, pan - 360.0, pan + 360.0):
        if ranges.pan_min - eps <= candidate <= ranges.pan_max + eps:
            return min(max(candidate, ranges.pan_min), ranges.pan_max)
    return pan  # outside the configured ranges: report it as it is


def pan_distance(a: float, b: float) -> float:
    """Angular distance in degrees (pan is an angle, 359 and 1 are 2 apart)."""
    return abs((a - b + 180.0) % 360.0 - 180.0)


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image: low for blurred (or featureless) frames."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def fmt(pose: Pose) -> str:
    return f"(pan {pose.pan:.2f}, tilt {pose.tilt:.2f}, zoom {pose.zoom:.2f}x)"


class HttpPtzDriver(CameraDriver):
    name = "http-ptz"

    def __init__(self, options: DriverOptions):
        options.check(self.name)
        self.options = options
        self.ranges = options.ranges
        self.motion = options.motion
        self.http = CameraHttp(options.connection, options.camera)
        self._moved = False
        self._image_size: tuple[int, int] | None = None

    # ---- what a protocol implements ----------------------------------------------------------
    @abstractmethod
    def _query(self, retries: int | None = None) -> Pose:
        """The camera's position in our units (pan already in the configured frame)."""

    @abstractmethod
    def _send_absolute(self, pose: Pose) -> None: ...

    @abstractmethod
    def _send_relative(self, d_pan: float, d_tilt: float, d_zoom: float) -> None:
        """Send a relative move (not idempotent: the HTTP layer must not repeat it blindly)."""

    @abstractmethod
    def _fetch_image(self) -> np.ndarray:
        """One frame as RGB uint8."""

    def _extra(self) -> dict:
        return {}

    # ---- the CameraDriver contract -----------------------------------------------------------
    def info(self) -> DriverInfo:
        """Reads the position once, so that an unreachable camera or bad credentials show up in
        /readyz and at the start of a sweep, not in the middle of one."""
        self.position()
        width, height = self._image_size or (None, None)
        return DriverInfo(driver=self.name, ranges=self.ranges, image_width=width, image_height=height,
                          extra={"endpoint": self.http.endpoint, "user": self.options.connection.user,
                                 **self._extra()})

    def position(self) -> Pose:
        return self._snap(self._query())

    def move_absolute(self, pose: Pose) -> Pose:
        target = self.ranges.apply(pose)
        start = self.position()
        self._send_absolute(target)
        self._moved = True
        return self._settle(target, start)

    def move_relative(self, d_pan: float, d_tilt: float, d_zoom: float) -> Pose:
        start = self.position()
        target = self.ranges.move(start, d_pan, d_tilt, d_zoom)
        # Send the clamped deltas: the device's own limits may be wider than the configured ranges.
        if self.ranges.pan_wraps:
            eff_pan = d_pan
        else:
            eff_pan = target.pan - start.pan
        self._send_relative(eff_pan, target.tilt - start.tilt, target.zoom - start.zoom)
        self._moved = True
        return self._settle(target, start)

    def snapshot(self) -> Snapshot:
        pose = self.position()
        threshold = self.motion.sharpness_threshold
        tries = 1 + (self.motion.sharpness_retries if threshold > 0 and self._moved else 0)
        image = self._sharpest_image(tries, threshold)
        self._moved = False
        self._image_size = (image.shape[1], image.shape[0])
        return Snapshot(image=image, pose=pose, captured_at=datetime.now(UTC))

    def _sharpest_image(self, tries: int, threshold: float) -> np.ndarray:
        """The first of up to `tries` frames that reaches the sharpness threshold, else the
        sharpest of them (one try: the first frame, unscored)."""
        best_image = self._fetch_image()
        best_score = sharpness(best_image) if tries > 1 else math.inf
        for _ in range(tries - 1):
            if best_score >= threshold:
                return best_image
            time.sleep(self.motion.sharpness_wait_s)
            image = self._fetch_image()
            score = sharpness(image)
            if score > best_score:
                best_image, best_score = image, score
        if best_score < threshold:
            log.warning("camera %s: no frame reached sharpness %.0f in %d tries (best %.1f); "
                        "keeping the sharpest", self.options.camera, threshold, tries, best_score)
        return best_image

    def close(self) -> None:
        self.http.close()

    # ---- internals ---------------------------------------------------------------------------
    def _snap(self, pose: Pose) -> Pose:
        """Wrap pan into the configured frame and absorb rounding just outside tilt/zoom limits."""
        r, tol = self.ranges, self.motion
        tilt = pose.tilt
        if r.tilt_min - tol.tolerance_deg <= tilt <= r.tilt_max + tol.tolerance_deg:
            tilt = min(max(tilt, r.tilt_min), r.tilt_max)
        zoom = pose.zoom
        if r.zoom_min * (1 - tol.tolerance_zoom) <= zoom <= r.zoom_max * (1 + tol.tolerance_zoom):
            zoom = min(max(zoom, r.zoom_min), r.zoom_max)
        return Pose(from_device_pan(pose.pan, r), tilt, zoom)

    def _close_to(self, a: Pose, b: Pose) -> bool:
        m = self.motion
        return (pan_distance(a.pan, b.pan) <= m.tolerance_deg and abs(a.tilt - b.tilt) <= m.tolerance_deg
                and abs(a.zoom - b.zoom) <= m.tolerance_zoom * max(b.zoom, 1e-9))

    def _settle(self, target: Pose, start: Pose) -> Pose:
        """Poll the position until it reaches `target` (or stops elsewhere), with a deadline."""
        m = self.motion
        deadline = time.monotonic() + m.settle_timeout_s
        readings: list[Pose] = []
        last_error: CameraError | None = None
        while True:
            try:
                pose = self._snap(self._query(retries=0))  # a failed poll is retried by the loop
            except CameraError as exc:
                if getattr(exc, "retry", None) not in (ALWAYS, IDEMPOTENT) and \
                        not isinstance(exc, CameraTimeout):
                    raise
                last_error = exc
            else:
                readings.append(pose)
                # At the target, or close to it and no longer moving (cameras stop a hair off).
                stopped_near = (self._close_to(pose, target) and len(readings) > 1
                                and self._same(pose, readings[-2]))
                if self._same(pose, target, exact=False) or stopped_near:
                    return pose
                recent = readings[-m.stable_polls:]
                if len(recent) == m.stable_polls and all(self._same(p, pose) for p in recent) \
                        and not self._close_to(pose, start):
                    log.warning("camera %s: stopped at %s short of the target %s; do the configured "
                                "ranges match the camera?", self.options.camera, fmt(pose), fmt(target))
                    return pose
            if time.monotonic() + m.settle_poll_s > deadline:
                break
            time.sleep(m.settle_poll_s)
        if len(readings) >= 2 and self._same(readings[-1], readings[-2]):
            log.warning("camera %s: the move to %s ended at %s after %.1f s", self.options.camera,
                        fmt(target), fmt(readings[-1]), m.settle_timeout_s)
            return readings[-1]
        where = f"last position {fmt(readings[-1])}" if readings else f"no position read ({last_error})"
        raise CameraTimeout(f"move to {fmt(target)} did not settle within {m.settle_timeout_s:g} s; "
                            f"{where}")

    @staticmethod
    def _same(a: Pose, b: Pose, exact: bool = True) -> bool:
        """Equal readings (a stopped camera), or with exact=False equal up to the rounding of the
        camera's position reply (0.01 degree, 0.1% of zoom)."""
        deg, zoom = (1e-3, 1e-4) if exact else (0.011, 1e-3 * max(b.zoom, 1.0))
        return pan_distance(a.pan, b.pan) < deg and abs(a.tilt - b.tilt) < deg and abs(a.zoom - b.zoom) < zoom
