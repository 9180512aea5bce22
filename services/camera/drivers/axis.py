"""Axis PTZ cameras over VAPIX (`/axis-cgi/...`, HTTP digest auth).

Units: pan and tilt are degrees (the camera's pan frame is -180..180; any configured frame is
mapped onto it), zoom is a device unit 1..9999. Zoom units map linearly to magnification:
unit 1 is 1x and unit 9999 is `camera.max_optical_zoom` (default: `camera.zoom_max`). Linear,
because VAPIX documents the units as evenly spaced steps of the zoom motor and because it keeps a
relative zoom in magnification a fixed number of units, wherever the lens is. A model whose zoom
curve is far from linear should set `max_optical_zoom` from its datasheet and narrow zoom_max.

Replies: moves answer 204 (or an empty 200); `query=position` answers `pan=..`, `tilt=..`,
`zoom=..` lines; errors come as a 200 with a text such as "Driver is initiating. Please try again
later." or "Error: ...", which `check_text` turns into typed errors.
"""

from __future__ import annotations

import numpy as np

from services.camera.drivers.http import check_text, decode_jpeg, parse_key_values
from services.camera.drivers.options import DriverOptions
from services.camera.drivers.ptz import HttpPtzDriver, to_device_pan
from shared.pose import Pose

PTZ_PATH = "/axis-cgi/com/ptz.cgi"
IMAGE_PATH = "/axis-cgi/jpg/image.cgi"
UNITS_MIN, UNITS_MAX = 1, 9999


def zoom_to_units(zoom: float, max_zoom: float) -> int:
    """Magnification -> VAPIX zoom units (1x -> 1, max_zoom -> 9999), rounded and clamped."""
    units = UNITS_MIN + (zoom - 1.0) / (max_zoom - 1.0) * (UNITS_MAX - UNITS_MIN)
    return int(min(max(round(units), UNITS_MIN), UNITS_MAX))


def units_to_zoom(units: float, max_zoom: float) -> float:
    """VAPIX zoom units -> magnification (the inverse of `zoom_to_units`)."""
    return 1.0 + (units - UNITS_MIN) * (max_zoom - 1.0) / (UNITS_MAX - UNITS_MIN)


def _ok(what: str):
    def parse(response) -> None:
        check_text(response, what, allow_empty=True)
    return parse


class AxisDriver(HttpPtzDriver):
    name = "axis"

    def __init__(self, options: DriverOptions, camera_index: int = 1):
        super().__init__(options)
        self.index = camera_index
        self.max_zoom = options.axis_max_zoom

    def _query(self, retries: int | None = None) -> Pose:
        what = "VAPIX position query"
        values = self.http.request(
            "GET", PTZ_PATH, params={"query": "position", "camera": self.index}, what=what,
            retries=retries,
            parse=lambda r: parse_key_values(check_text(r, what), what, ("pan", "tilt", "zoom")))
        return Pose(values["pan"], values["tilt"], units_to_zoom(values["zoom"], self.max_zoom))

    def _send_absolute(self, pose: Pose) -> None:
        what = "VAPIX absolute move"
        params = {"camera": self.index, "pan": f"{to_device_pan(pose.pan, -180.0):.2f}",
                  "tilt": f"{pose.tilt:.2f}", "zoom": zoom_to_units(pose.zoom, self.max_zoom)}
        self.http.request("GET", PTZ_PATH, params=params, what=what, parse=_ok(what))

    def _send_relative(self, d_pan: float, d_tilt: float, d_zoom: float) -> None:
        what = "VAPIX relative move"
        d_units = round(d_zoom * (UNITS_MAX - UNITS_MIN) / (self.max_zoom - 1.0))
        params = {"camera": self.index, "rpan": f"{d_pan:.2f}", "rtilt": f"{d_tilt:.2f}",
                  "rzoom": int(d_units)}
        self.http.request("GET", PTZ_PATH, params=params, what=what, idempotent=False, parse=_ok(what))

    def _fetch_image(self) -> np.ndarray:
        what = "VAPIX snapshot"
        return self.http.request("GET", IMAGE_PATH, params={"camera": self.index}, what=what,
                                 parse=lambda r: decode_jpeg(r, what))

    def _extra(self) -> dict:
        return {"protocol": "VAPIX", "max_optical_zoom": self.max_zoom}
