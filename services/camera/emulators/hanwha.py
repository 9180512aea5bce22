"""A Hanwha (Wisenet) camera speaking SUNAPI: `/stw-cgi/ptzcontrol.cgi` and `/stw-cgi/video.cgi`.

Absolute and relative moves take `Pan` (degrees, 0..360 frame), `Tilt` (degrees) and `Zoom`
(magnification); absent values keep the current one. The query answers `Pan=`, `Tilt=`, `Zoom=`
lines with CRLF endings, as SUNAPI does. Bad requests get SUNAPI's 200 `NG` reply with an error
code, which is what real cameras send and what a driver must not mistake for success.
"""

from __future__ import annotations

from services.camera.emulators.core import EmulatorApp, Reply, Request, device_pan, number, world_pan
from shared.pose import Pose


def _ng(code: int, details: str) -> Reply:
    return Reply.text(200, f"NG\r\nError Code: {code}\r\nError Details: {details}\r\n")


class HanwhaEmulator(EmulatorApp):
    protocol = "hanwha"

    def route(self, request: Request):
        if request.path == "/stw-cgi/ptzcontrol.cgi":
            sub = (request.arg("msubmenu") or "").lower()
            if sub == "query":
                return "position", self._query
            if sub in ("absolute", "relative", "home", "stop"):
                return "move", self._move
            return "setup", lambda _r: _ng(608, f"unknown msubmenu '{sub}'")
        if request.path == "/stw-cgi/video.cgi" and (request.arg("msubmenu") or "").lower() == "snapshot":
            return "snapshot", self.snapshot_reply
        return None

    def _query(self, request: Request) -> Reply:
        pose = self.mechanics.pose()
        fields = [f.strip().lower() for f in (request.arg("Query") or "Pan,Tilt,Zoom").split(",")]
        values = {"pan": f"Pan={device_pan(pose.pan, 0.0):.2f}", "tilt": f"Tilt={pose.tilt:.2f}",
                  "zoom": f"Zoom={pose.zoom:.3f}"}
        unknown = [f for f in fields if f not in values]
        if unknown:
            return _ng(602, f"unknown Query field {unknown[0]}")
        return Reply.text(200, "".join(values[f] + "\r\n" for f in fields))

    def _move(self, request: Request) -> Reply:
        sub = (request.arg("msubmenu") or "").lower()
        if sub == "home":
            self.mechanics.move_to(self.mechanics.sim.config.home)
            return Reply.text(200, "OK\r\n")
        if sub == "stop":
            self.mechanics.move_to(self.mechanics.pose())
            return Reply.text(200, "OK\r\n")
        try:
            pan, tilt, zoom = (number(request.arg(k), k) for k in ("Pan", "Tilt", "Zoom"))
        except ValueError as exc:
            return _ng(602, f"invalid parameter value ({exc})")
        if sub == "absolute":
            now = self.mechanics.pose()
            self.mechanics.move_to(Pose(now.pan if pan is None else world_pan(pan, self.ranges),
                                        now.tilt if tilt is None else tilt,
                                        now.zoom if zoom is None else zoom))
        else:
            self.mechanics.move_by(pan or 0.0, tilt or 0.0, zoom or 0.0)
        return Reply.text(200, "OK\r\n")
