"""The camera driver interface every PTZ camera speaks (the sim, Hanwha, Axis and ONVIF).

Drivers are synchronous: the camera service runs them in its thread pool and owns the one driver
instance of its camera, so that every mover (REST clients, collection and navigation jobs) goes
through the same state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from shared.pose import Pose, PoseRanges


class CameraError(RuntimeError):
    """A camera call failed; the message says which call and why (never a password)."""


class CameraTimeout(CameraError):
    """The camera did not answer in time."""


class CameraBadResponse(CameraError):
    """The camera answered something unusable: an error text, garbage, a broken image."""


class CameraRangeError(CameraError, ValueError):
    """The requested move is outside what the camera can reach."""


@dataclass(frozen=True)
class Snapshot:
    image: np.ndarray  # RGB uint8 (H, W, 3)
    pose: Pose
    captured_at: datetime
    sim_time: float | None = None
    dynamic_fraction: float | None = None  # simulator ground truth; None for real cameras
    kind_fractions: dict[str, float] | None = None  # simulator ground truth: view share per zone kind


@dataclass(frozen=True)
class DriverInfo:
    driver: str
    ranges: PoseRanges
    hfov_deg_at_min_zoom: float | None = None
    image_width: int | None = None
    image_height: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class CameraDriver(ABC):
    name: str = "abstract"

    @abstractmethod
    def info(self) -> DriverInfo: ...

    @abstractmethod
    def position(self) -> Pose: ...

    @abstractmethod
    def move_absolute(self, pose: Pose) -> Pose:
        """Move to `pose` (already checked against the ranges); returns the reached pose."""

    @abstractmethod
    def move_relative(self, d_pan: float, d_tilt: float, d_zoom: float) -> Pose:
        """Move by the deltas (pan wraps, tilt and zoom clamp); returns the reached pose."""

    @abstractmethod
    def snapshot(self) -> Snapshot: ...

    def close(self) -> None:  # noqa: B027 - a default on purpose: drivers without connections keep it
        """Release connections; the default has nothing to release."""
