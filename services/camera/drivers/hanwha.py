"""Hanwha (Wisenet) PTZ cameras over SUNAPI (`/stw-cgi/...`, HTTP digest auth).

Units: SUNAPI speaks our units already (pan 0..360 degrees, tilt degrees, zoom as the optical
magnification ratio), so the only mapping is the pan frame: whatever frame the configured ranges
use (0..360 or -180..180), the camera is sent the same direction in 0..360.

Replies: control commands answer `OK` (or nothing); the position query answers `Pan=..`, `Tilt=..`,
`Zoom=..` lines (with or without a `Channel.N.` prefix); errors come as a 200 with `NG` /
`Error Code: ...` text or a busy text, which `check_text` turns into typed errors.
"""

from __future__ import annotations

import numpy as np

from services.camera.drivers.http import check_text, decode_jpeg, parse_key_values
from services.camera.drivers.options import DriverOptions
from services.camera.drivers.ptz import HttpPtzDriver, to_device_pan
from shared.pose import Pose

PTZ_PATH = "/stw-cgi/ptzcontrol.cgi"
VIDEO_PATH = "/stw-cgi/video.cgi"


def _ok(what: str):
    def parse(response) -> None:
        check_text(response, what, allow_empty=True)
    return parse


class HanwhaDriver(HttpPtzDriver):
    name = "hanwha"

    def __init__(self, options: DriverOptions, channel: int = 0):
        super().__init__(options)
        self.channel = channel

    def _query(self, retries: int | None = None) -> Pose:
        what = "SUNAPI position query"
        params = {"msubmenu": "query", "action": "view", "Channel": self.channel, "Query": "Pan,Tilt,Zoom"}
        values = self.http.request(
            "GET", PTZ_PATH, params=params, what=what, retries=retries,
            parse=lambda r: parse_key_values(check_text(r, what), what, ("pan", "tilt", "zoom")))
        return Pose(values["pan"], values["tilt"], values["zoom"])

    def _control(self, msubmenu: str, pan: float, tilt: float, zoom: float, idempotent: bool) -> None:
        what = f"SUNAPI {msubmenu} move"
        params = {"msubmenu": msubmenu, "action": "control", "Channel": self.channel,
                  "Pan": f"{pan:.2f}", "Tilt": f"{tilt:.2f}", "Zoom": f"{zoom:.3f}"}
        self.http.request("GET", PTZ_PATH, params=params, what=what, idempotent=idempotent,
                          parse=_ok(what))

    def _send_absolute(self, pose: Pose) -> None:
        self._control("absolute", to_device_pan(pose.pan, 0.0), pose.tilt, pose.zoom, idempotent=True)

    def _send_relative(self, d_pan: float, d_tilt: float, d_zoom: float) -> None:
        self._control("relative", d_pan, d_tilt, d_zoom, idempotent=False)

    def _fetch_image(self) -> np.ndarray:
        what = "SUNAPI snapshot"
        params = {"msubmenu": "snapshot", "action": "view", "Channel": self.channel}
        return self.http.request("GET", VIDEO_PATH, params=params, what=what,
                                 parse=lambda r: decode_jpeg(r, what))

    def _extra(self) -> dict:
        return {"protocol": "SUNAPI", "channel": self.channel}
