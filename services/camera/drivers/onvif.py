"""ONVIF PTZ cameras: the device, media and PTZ services over SOAP 1.2 (see `soap.py`).

Set-up (once, lazily, on the first call): GetSystemDateAndTime (unauthenticated, to learn the
camera's clock offset for WS-Security), GetCapabilities (where the media and PTZ services live),
GetProfiles (the profile with a PTZ configuration, or `camera.onvif_profile`), GetSnapshotUri.
Every service is then reached through `camera.host:camera.port` with only the path the camera
reported, because cameras behind NAT or port forwarding report addresses the node cannot reach.

Units: ONVIF's generic spaces are normalised. Pan -1..1 and tilt -1..1 span the configured
pan_min..pan_max and tilt_min..tilt_max, zoom 0..1 spans zoom_min..zoom_max (linear). The
configured ranges must therefore be the camera's full range (its datasheet); relative moves use
the generic translation spaces with the same scale (a pan delta of 2 is the whole range).
Snapshots are plain HTTP GETs of the snapshot URI on the same digest-auth session.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from urllib.parse import urlsplit

import numpy as np

from services.camera.drivers import soap
from services.camera.drivers.base import CameraBadResponse, CameraError
from services.camera.drivers.http import IDEMPOTENT, decode_jpeg, failure
from services.camera.drivers.options import DriverOptions
from services.camera.drivers.ptz import HttpPtzDriver
from shared.pose import Pose

log = logging.getLogger(__name__)

DEVICE_PATH = "/onvif/device_service"
PT_POSITION = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/PositionGenericSpace"
Z_POSITION = "http://www.onvif.org/ver10/tptz/ZoomSpaces/PositionGenericSpace"
PT_TRANSLATION = "http://www.onvif.org/ver10/tptz/PanTiltSpaces/TranslationGenericSpace"
Z_TRANSLATION = "http://www.onvif.org/ver10/tptz/ZoomSpaces/TranslationGenericSpace"


class OnvifDriver(HttpPtzDriver):
    name = "onvif"

    def __init__(self, options: DriverOptions):
        super().__init__(options)
        self._user = options.connection.user
        self._password = options.connection.password
        self._clock_offset_s = 0.0
        self._media_path = self._ptz_path = DEVICE_PATH
        self._profile: str | None = None
        self._snapshot_path = ""  # known once `_setup` has run, like the profile

    # ---- SOAP plumbing -----------------------------------------------------------------------
    def _call(self, path: str, ns: str, op: str, inner: str = "", *, auth: bool = True,
              idempotent: bool = True, retries: int | None = None):
        what = f"ONVIF {op}"

        def body() -> bytes:  # a fresh UsernameToken (nonce, created) for every try
            security = soap.wsse_header(self._user, self._password.get_secret_value(),
                                        self._clock_offset_s) if auth else ""
            return soap.envelope(f"<{ns}:{op}>{inner}</{ns}:{op}>", security)

        return self.http.request("POST", path, what=what, content=body,
                                 headers=soap.soap_headers(f"{soap.NS[ns]}/{op}"),
                                 accept=soap.SOAP_STATUS, idempotent=idempotent, retries=retries,
                                 parse=lambda r: soap.parse_reply(r, what, self._user))

    def _setup(self) -> str:
        """Discover services, profile and snapshot URI once; returns the profile token."""
        if self._profile is not None:
            return self._profile
        self._clock_offset_s = self._camera_clock_offset()
        caps = self._call(DEVICE_PATH, "tds", "GetCapabilities", "<tds:Category>All</tds:Category>")
        self._media_path = _service_path(caps, "Media") or DEVICE_PATH
        self._ptz_path = _service_path(caps, "PTZ") or DEVICE_PATH
        profiles = self._call(self._media_path, "trt", "GetProfiles")
        token = self._choose_profile(profiles)
        uri = self._call(self._media_path, "trt", "GetSnapshotUri",
                         f"<trt:ProfileToken>{token}</trt:ProfileToken>")
        parts = urlsplit(soap.find_text(uri, "trt:MediaUri/tt:Uri", "ONVIF GetSnapshotUri"))
        self._snapshot_path = parts.path + (f"?{parts.query}" if parts.query else "")
        self._profile = token
        return token

    def _camera_clock_offset(self) -> float:
        """Camera UTC minus ours; 0 when the camera will not say (some want auth even for this)."""
        try:
            reply = self._call(DEVICE_PATH, "tds", "GetSystemDateAndTime", auth=False)
            utc = reply.find(".//tt:UTCDateTime", soap.NS)
            if utc is None:
                return 0.0
            get = lambda p: int(soap.find_text(utc, p, "ONVIF GetSystemDateAndTime"))  # noqa: E731
            camera = datetime(get("tt:Date/tt:Year"), get("tt:Date/tt:Month"), get("tt:Date/tt:Day"),
                              get("tt:Time/tt:Hour"), get("tt:Time/tt:Minute"), get("tt:Time/tt:Second"),
                              tzinfo=UTC)
        except (CameraError, ValueError) as exc:
            log.info("camera %s: no clock from GetSystemDateAndTime (%s); assuming ours",
                     self.options.camera, exc)
            return 0.0
        offset = (camera - datetime.now(UTC)).total_seconds()
        if abs(offset) > 5:
            log.info("camera %s: its clock is %.0f s off ours; WS-Security tokens are shifted",
                     self.options.camera, offset)
        return offset if abs(offset) > 1 else 0.0

    def _choose_profile(self, profiles) -> str:
        found = [(p.get("token"), p.find("tt:PTZConfiguration", soap.NS) is not None)
                 for p in profiles.findall("trt:Profiles", soap.NS) if p.get("token")]
        if not found:
            raise CameraBadResponse("ONVIF GetProfiles: the camera lists no media profile")
        wanted = self.options.onvif_profile
        if wanted:
            if wanted not in [t for t, _ in found]:
                raise CameraBadResponse(f"ONVIF GetProfiles: no profile '{wanted}' "
                                        f"(the camera has {', '.join(t for t, _ in found)})")
            return wanted
        return next((t for t, ptz in found if ptz), found[0][0])

    # ---- unit mapping ------------------------------------------------------------------------
    def _to_space(self, pose: Pose) -> tuple[float, float, float]:
        r = self.ranges
        x = -1.0 + 2.0 * (pose.pan - r.pan_min) / (r.pan_max - r.pan_min)
        y = -1.0 + 2.0 * (pose.tilt - r.tilt_min) / (r.tilt_max - r.tilt_min)
        z = (pose.zoom - r.zoom_min) / (r.zoom_max - r.zoom_min)
        return _clip(x, -1, 1), _clip(y, -1, 1), _clip(z, 0, 1)

    def _from_space(self, x: float, y: float, z: float) -> Pose:
        r = self.ranges
        return Pose(r.pan_min + (x + 1.0) / 2.0 * (r.pan_max - r.pan_min),
                    r.tilt_min + (y + 1.0) / 2.0 * (r.tilt_max - r.tilt_min),
                    r.zoom_min + z * (r.zoom_max - r.zoom_min))

    # ---- the protocol hooks ------------------------------------------------------------------
    def _query(self, retries: int | None = None) -> Pose:
        token = self._setup()
        what = "ONVIF GetStatus"
        reply = self._call(self._ptz_path, "tptz", "GetStatus",
                           f"<tptz:ProfileToken>{token}</tptz:ProfileToken>", retries=retries)
        position = reply.find("tptz:PTZStatus/tt:Position", soap.NS)
        if position is None:
            raise failure(CameraBadResponse, f"{what}: the status has no position", IDEMPOTENT)
        pan_tilt = position.find("tt:PanTilt", soap.NS)
        zoom = position.find("tt:Zoom", soap.NS)
        return self._from_space(soap.float_attr(pan_tilt, "x", what), soap.float_attr(pan_tilt, "y", what),
                                soap.float_attr(zoom, "x", what))

    def _move(self, op: str, element: str, x: float, y: float, z: float, spaces: tuple[str, str],
              idempotent: bool) -> None:
        token = self._setup()
        inner = (f"<tptz:ProfileToken>{token}</tptz:ProfileToken><tptz:{element}>"
                 f'<tt:PanTilt x="{x:.7f}" y="{y:.7f}" space="{spaces[0]}"/>'
                 f'<tt:Zoom x="{z:.7f}" space="{spaces[1]}"/></tptz:{element}>')
        self._call(self._ptz_path, "tptz", op, inner, idempotent=idempotent)

    def _send_absolute(self, pose: Pose) -> None:
        self._move("AbsoluteMove", "Position", *self._to_space(pose), (PT_POSITION, Z_POSITION), True)

    def _send_relative(self, d_pan: float, d_tilt: float, d_zoom: float) -> None:
        r = self.ranges
        dx = 2.0 * d_pan / (r.pan_max - r.pan_min)
        dy = 2.0 * d_tilt / (r.tilt_max - r.tilt_min)
        dz = d_zoom / (r.zoom_max - r.zoom_min)
        self._move("RelativeMove", "Translation", dx, dy, dz, (PT_TRANSLATION, Z_TRANSLATION), False)

    def _fetch_image(self) -> np.ndarray:
        self._setup()
        what = "ONVIF snapshot"
        return self.http.request("GET", self._snapshot_path, what=what,
                                 parse=lambda r: decode_jpeg(r, what))

    def _extra(self) -> dict:
        return {"protocol": "ONVIF", "profile": self._profile, "ptz_service": self._ptz_path,
                "media_service": self._media_path}


def _service_path(capabilities, name: str) -> str | None:
    xaddr = capabilities.find(f".//tt:{name}/tt:XAddr", soap.NS)
    if xaddr is None or not (xaddr.text or "").strip():
        return None
    return urlsplit(xaddr.text.strip()).path or None


def _clip(value: float, lo: float, hi: float) -> float:
    return min(max(value, lo), hi)
