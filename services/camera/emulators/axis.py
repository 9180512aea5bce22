"""An Axis camera speaking VAPIX: `/axis-cgi/com/ptz.cgi` and `/axis-cgi/jpg/image.cgi`.

`pan`/`tilt` are degrees in the -180..180 frame, `zoom` is a device unit 1..9999 mapped linearly
to 1x..`max_optical_zoom` (default: the world's zoom_max), as docs/cameras.md describes; `rpan`,
`rtilt`, `rzoom` move relatively (rzoom in units). Moves answer 204 No Content; `query=position`
answers `pan=`, `tilt=`, `zoom=` lines plus the focus and iris lines real cameras add. Bad
requests get VAPIX's 200 "Error: ..." text.
"""

from __future__ import annotations

from services.camera.emulators.core import EmulatorApp, Reply, Request, device_pan, number, world_pan
from shared.pose import Pose

UNITS_MIN, UNITS_MAX = 1, 9999


class AxisEmulator(EmulatorApp):
    protocol = "axis"

    @property
    def max_zoom(self) -> float:
        return float(self.config.max_optical_zoom or self.ranges.zoom_max)

    def units(self, zoom: float) -> int:
        return round(UNITS_MIN + (zoom - 1.0) * (UNITS_MAX - UNITS_MIN) / (self.max_zoom - 1.0))

    def magnification(self, units: float) -> float:
        units = min(max(units, UNITS_MIN), UNITS_MAX)
        return 1.0 + (units - UNITS_MIN) * (self.max_zoom - 1.0) / (UNITS_MAX - UNITS_MIN)

    def route(self, request: Request):
        if request.path == "/axis-cgi/com/ptz.cgi":
            if request.arg("query") is not None:
                return "position", self._query
            return "move", self._move
        if request.path == "/axis-cgi/jpg/image.cgi":
            return "snapshot", self.snapshot_reply
        return None

    def _query(self, request: Request) -> Reply:
        if request.arg("query") != "position":
            return Reply.text(200, f"Error: unsupported query '{request.arg('query')}'\n")
        pose = self.mechanics.pose()
        return Reply.text(200, f"pan={device_pan(pose.pan, -180.0):.4f}\ntilt={pose.tilt:.4f}\n"
                               f"zoom={self.units(pose.zoom)}\niris=5000\nfocus=7500\n"
                               f"autofocus=on\nautoiris=on\n")

    def _move(self, request: Request) -> Reply:
        try:
            pan, tilt, zoom, rpan, rtilt, rzoom = (
                number(request.arg(k), k) for k in ("pan", "tilt", "zoom", "rpan", "rtilt", "rzoom"))
        except ValueError as exc:
            return Reply.text(200, f"Error: {exc}\n")
        if all(v is None for v in (pan, tilt, zoom, rpan, rtilt, rzoom)):
            return Reply.text(200, "Error: no PTZ command given\n")
        now = self.mechanics.pose()
        target = Pose(now.pan if pan is None else world_pan(pan, self.ranges),
                      now.tilt if tilt is None else tilt,
                      now.zoom if zoom is None else self.magnification(zoom))
        d_zoom = 0.0 if rzoom is None else self.magnification(self.units(target.zoom) + rzoom) - target.zoom
        self.mechanics.move_to(self.ranges.move(target, rpan or 0.0, rtilt or 0.0, d_zoom))
        return Reply(204)
