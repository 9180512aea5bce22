"""Pinhole-camera geometry: from a pose to the panorama coordinates of every view pixel.

World frame: Z points to yaw 0, X to yaw 90 (so yaw grows to the right when seen from the camera),
Y up. A pose's pan is the yaw of the optical axis and its tilt the pitch (positive up). Ray
directions in the camera frame depend only on (width, height, hfov), so they are cached and only
rotated per pose; this keeps a 224x224 view at a few milliseconds.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

import numpy as np


def camera_rays(width: int, height: int, hfov_deg: float) -> np.ndarray:
    """Unit ray directions (height*width, 3) float32 in the camera frame (x right, y up, z forward)."""
    if width < 1 or height < 1:
        raise ValueError(f"view size must be positive, got {width}x{height}")
    if not 0.0 < hfov_deg < 180.0:
        raise ValueError(f"horizontal field of view must be in (0, 180) degrees, got {hfov_deg}")
    k = math.tan(math.radians(hfov_deg) / 2.0) / (width / 2.0)  # 1 / focal length in pixels
    xs = ((np.arange(width, dtype=np.float32) + 0.5 - width / 2.0) * k)[None, :]
    ys = (-(np.arange(height, dtype=np.float32) + 0.5 - height / 2.0) * k)[:, None]
    inv = 1.0 / np.sqrt(xs * xs + ys * ys + 1.0)
    d = np.empty((height, width, 3), np.float32)
    d[..., 0] = xs * inv
    d[..., 1] = ys * inv
    d[..., 2] = inv
    return d.reshape(-1, 3)


def rotation(pan_deg: float, tilt_deg: float) -> np.ndarray:
    """Camera-to-world rotation: pitch up by tilt about the camera x axis, then yaw right by pan."""
    a, p = math.radians(pan_deg), math.radians(tilt_deg)
    ca, sa, cp, sp = math.cos(a), math.sin(a), math.cos(p), math.sin(p)
    pitch = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
    yaw = np.array([[ca, 0, sa], [0, 1, 0], [-sa, 0, ca]])
    return yaw @ pitch


class RayCache:
    """A small thread-safe LRU of camera rays per (width, height, hfov)."""

    def __init__(self, capacity: int = 64) -> None:
        self._capacity = capacity
        self._items: OrderedDict[tuple[int, int, float], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, width: int, height: int, hfov_deg: float) -> np.ndarray:
        key = (int(width), int(height), round(float(hfov_deg), 9))
        with self._lock:
            rays = self._items.get(key)
            if rays is not None:
                self._items.move_to_end(key)
                return rays
        rays = camera_rays(width, height, hfov_deg)
        rays.setflags(write=False)
        with self._lock:
            self._items[key] = rays
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
        return rays


def view_fractions(rays: np.ndarray, pan_deg: float, tilt_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Panorama coordinates of each ray as fractions: u in [0, 1) of the width, v in [0, 1] of the height.

    u = yaw / 360 (wrapped), v = (90 - pitch) / 180. Multiply by the panorama size for pixel-edge
    coordinates (pixel k spans [k, k+1)).
    """
    r = rotation(pan_deg, tilt_deg).astype(np.float32)
    world = rays @ r.T
    yaw = np.arctan2(world[:, 0], world[:, 2])
    pitch = np.arcsin(np.clip(world[:, 1], -1.0, 1.0))
    u = yaw * np.float32(1.0 / (2.0 * math.pi))
    u -= np.floor(u)
    v = np.float32(0.5) - pitch * np.float32(1.0 / math.pi)
    return u, v
