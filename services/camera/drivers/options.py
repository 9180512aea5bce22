"""What a real-camera driver needs from the settings, gathered and checked in one place.

Drivers take a `DriverOptions` (so tests build them directly, with short timeouts) and
`DriverOptions.from_settings` is the only code that reads `settings.camera`.
A real camera without a password is a configuration error raised at start-up, before any request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import SecretStr

from services.camera.drivers.http import ConnectionOptions
from shared.config import ConfigError, Settings
from shared.pose import PoseRanges


@dataclass(frozen=True)
class MotionOptions:
    """How moves are confirmed and frames are accepted.

    A move is settled when the polled position is within `tolerance_deg` (pan, tilt) and
    `tolerance_zoom` (relative) of the target, or when it has stopped (the same reading
    `stable_polls` times) somewhere other than where it started, e.g. at a hardware limit that the
    configured ranges do not know. Polling stops at `settle_timeout_s`.
    `sharpness_threshold` > 0 turns on the blur check (variance of the Laplacian of the grey
    frame) for the first frame after a move, with at most `sharpness_retries` extra frames.
    """

    settle_timeout_s: float = 10.0
    settle_poll_s: float = 0.1
    tolerance_deg: float = 0.25
    tolerance_zoom: float = 0.02
    stable_polls: int = 3
    sharpness_threshold: float = 0.0
    sharpness_retries: int = 3
    sharpness_wait_s: float = 0.2

    def __post_init__(self) -> None:
        if self.settle_timeout_s <= 0 or self.settle_poll_s <= 0:
            raise ValueError("settle_timeout_s and settle_poll_s must be positive")
        if self.stable_polls < 2 or self.sharpness_retries < 0:
            raise ValueError("stable_polls must be >= 2 and sharpness_retries >= 0")


@dataclass(frozen=True)
class DriverOptions:
    connection: ConnectionOptions
    ranges: PoseRanges
    motion: MotionOptions = field(default_factory=MotionOptions)
    camera: str = "cam0"
    max_optical_zoom: float | None = None  # Axis: the magnification at zoom unit 9999
    onvif_profile: str | None = None       # ONVIF: the media profile token (default: the first with PTZ)

    @classmethod
    def from_settings(cls, settings: Settings) -> DriverOptions:
        cam = settings.camera
        if cam.password is None or not cam.password.get_secret_value():
            raise ConfigError(
                f"camera.password: the '{cam.driver}' driver needs the camera's password; set "
                f"PTZJEPA_CAMERA__PASSWORD or PTZJEPA_CAMERA__PASSWORD_FILE (never the YAML file)")

        connection = ConnectionOptions(
            host=cam.host, port=cam.port, user=cam.user, password=SecretStr(cam.password.get_secret_value()),
            scheme=cam.scheme, timeout_s=cam.timeout_s, verify_tls=cam.verify_tls,
            retries=cam.retries, backoff_s=cam.backoff_s)
        try:
            motion = MotionOptions(
                settle_timeout_s=cam.settle_timeout_s, settle_poll_s=cam.settle_poll_s,
                tolerance_deg=cam.settle_tolerance_deg, sharpness_threshold=cam.sharpness_threshold,
                sharpness_retries=cam.sharpness_retries)
        except ValueError as exc:
            raise ConfigError(f"camera: {exc}") from None
        options = cls(connection=connection, ranges=cam.ranges(), motion=motion, camera=cam.name,
                      max_optical_zoom=cam.max_optical_zoom, onvif_profile=cam.onvif_profile)
        options.check(cam.driver)
        return options

    def check(self, driver: str) -> None:
        """Refuse ranges the driver cannot map (raised at start-up, not at the first move)."""
        r = self.ranges
        if driver == "axis":
            top = self.axis_max_zoom
            if r.zoom_min < 1.0 or r.zoom_max > top:
                raise ConfigError(f"camera: Axis zoom units 1..9999 map to 1x..{top:g}x "
                                  f"(camera.max_optical_zoom); zoom_min..zoom_max "
                                  f"{r.zoom_min:g}..{r.zoom_max:g} must lie inside it")
        if r.pan_wraps and abs((r.pan_max - r.pan_min) - 360.0) > 1e-6 and driver != "onvif":
            raise ConfigError(f"camera: a wrapping pan range must span 360 degrees, got "
                              f"{r.pan_min:g}..{r.pan_max:g}; set pan_wraps: false for a limited pan")

    @property
    def axis_max_zoom(self) -> float:
        return float(self.max_optical_zoom or self.ranges.zoom_max)
