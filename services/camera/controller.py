"""The camera service's domain object: one driver, one lock, validation and metrics.

Every move and snapshot of this camera goes through one `CameraController`, so moves from REST
clients and jobs never interleave inside a call and each call is measured.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from services.camera.drivers.base import CameraDriver, CameraError, CameraRangeError, DriverInfo, Snapshot
from shared.metrics import CAMERA_LATENCY, CAMERA_REQUESTS
from shared.pose import Pose


class CameraController:
    def __init__(self, driver: CameraDriver, camera: str):
        self.driver = driver
        self.camera = camera
        self._lock = threading.Lock()
        self._info: DriverInfo | None = None

    @contextmanager
    def _call(self, op: str) -> Iterator[None]:
        start = time.perf_counter()
        outcome = "ok"
        try:
            with self._lock:
                yield
        except CameraError as exc:
            outcome = type(exc).__name__
            raise
        finally:
            CAMERA_REQUESTS.labels(self.camera, self.driver.name, op, outcome).inc()
            CAMERA_LATENCY.labels(self.camera, self.driver.name, op).observe(time.perf_counter() - start)

    def info(self) -> DriverInfo:
        if self._info is None:
            with self._call("info"):
                self._info = self.driver.info()
        return self._info

    def position(self) -> Pose:
        with self._call("position"):
            return self.driver.position()

    def move(self, mode: str, pan: float, tilt: float, zoom: float) -> Pose:
        ranges = self.info().ranges
        if mode == "absolute":
            problems = ranges.check(Pose(pan, tilt, zoom))
        elif mode == "relative":
            problems = ranges.check_delta(pan, tilt, zoom)
        else:
            problems = [f"mode must be 'absolute' or 'relative', got '{mode}'"]
        if problems:
            raise CameraRangeError("; ".join(problems))
        with self._call(f"move_{mode}"):
            if mode == "absolute":
                return self.driver.move_absolute(Pose(pan, tilt, zoom))
            return self.driver.move_relative(pan, tilt, zoom)

    def snapshot(self) -> Snapshot:
        with self._call("snapshot"):
            return self.driver.snapshot()

    def close(self) -> None:
        self.driver.close()
