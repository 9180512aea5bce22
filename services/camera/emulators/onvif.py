"""An ONVIF camera: device, media and PTZ services over SOAP 1.2, plus a snapshot URL.

Operations: GetSystemDateAndTime (no auth, as the ONVIF core spec allows), GetCapabilities,
GetProfiles (a profile without PTZ listed first, so a driver must choose), GetSnapshotUri,
AbsoluteMove, RelativeMove, GetStatus; anything else is an ActionNotSupported fault. SOAP calls
authenticate with a WS-Security UsernameToken PasswordDigest (nonce, created within 5 minutes of
the camera's clock, nonces never reused); a failure is the spec's 400 + ter:NotAuthorized fault.
The snapshot URL uses HTTP digest, like real cameras. Positions use the generic spaces: pan and
tilt -1..1 and zoom 0..1 over the world's ranges. `advertised_host` makes the service addresses
name another host (as a camera behind NAT does), to prove a driver uses only their paths.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import xml.etree.ElementTree as ET
from collections import deque
from datetime import UTC, datetime, timedelta

from services.camera.drivers.soap import NS as SOAP_NS
from services.camera.emulators.core import EmulatorApp, Reply, Request
from shared.pose import Pose

# The driver's namespaces, and the ONVIF error one that only the emulator's fault replies use.
NS = {**SOAP_NS, "ter": "http://www.onvif.org/ver10/error"}
SERVICES = {"/onvif/device_service": "tds", "/onvif/media_service": "trt", "/onvif/ptz_service": "tptz"}
SNAPSHOT_PATH = "/onvif/snapshot.jpg"
OPS = {"GetStatus": "position", "AbsoluteMove": "move", "RelativeMove": "move"}  # else "setup"
OP_SERVICE = {"GetSystemDateAndTime": "tds", "GetCapabilities": "tds", "GetProfiles": "trt",
              "GetSnapshotUri": "trt", "GetStatus": "tptz", "AbsoluteMove": "tptz", "RelativeMove": "tptz"}
PTZ_PROFILE = "profile_ptz"
SPACE = "http://www.onvif.org/ver10/tptz/{}Spaces/{}GenericSpace"


def _envelope(body: str) -> bytes:
    ns = " ".join(f'xmlns:{k}="{v}"' for k, v in NS.items() if k not in ("wsse", "wsu"))
    return (f'<?xml version="1.0" encoding="UTF-8"?><env:Envelope {ns}>'
            f"<env:Body>{body}</env:Body></env:Envelope>").encode()


def _ok(body: str) -> Reply:
    return Reply(200, _envelope(body), "application/soap+xml; charset=utf-8")


def fault(status: int, code: str, subcode: str, reason: str) -> Reply:
    body = (f"<env:Fault><env:Code><env:Value>env:{code}</env:Value><env:Subcode><env:Value>{subcode}"
            f"</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang=\"en\">{reason}"
            f"</env:Text></env:Reason></env:Fault>")
    return Reply(status, _envelope(body), "application/soap+xml; charset=utf-8")


class OnvifEmulator(EmulatorApp):
    protocol = "onvif"

    def __init__(self, *args, advertised_host: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.advertised_host = advertised_host
        self._seen_nonces: deque[bytes] = deque(maxlen=4096)
        self.soap_calls: list[str] = []

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.config.clock_offset_s)

    def needs_http_auth(self, request: Request) -> bool:
        return request.path == SNAPSHOT_PATH

    def route(self, request: Request):
        if request.path == SNAPSHOT_PATH and request.method == "GET":
            return "snapshot", self.snapshot_reply
        if request.path not in SERVICES or request.method != "POST":
            return None
        parsed = _soap_call(request.body)
        if parsed is None:
            return "setup", lambda _r: fault(400, "Sender", "ter:WellFormed", "not a SOAP 1.2 envelope")
        root, call = parsed
        op = call.tag.rpartition("}")[2]
        self.soap_calls.append(op)
        return OPS.get(op, "setup"), lambda r: self._soap(r, root, call, op)

    # ---- WS-Security -------------------------------------------------------------------------
    def _authorised(self, root: ET.Element) -> bool:
        token = root.find("env:Header/wsse:Security/wsse:UsernameToken", NS)
        if token is None:
            return False
        user = token.findtext("wsse:Username", "", NS)
        password = token.find("wsse:Password", NS)
        nonce_text, created = token.findtext("wsse:Nonce", "", NS), token.findtext("wsu:Created", "", NS)
        if password is None or not password.get("Type", "").endswith("#PasswordDigest"):
            return False
        try:
            nonce = base64.b64decode(nonce_text, validate=True)
            when = datetime.fromisoformat(created.replace("Z", "+00:00"))
        except (binascii.Error, ValueError):
            return False
        if when.tzinfo is None or abs((self.now() - when).total_seconds()) > 300:
            return False
        if nonce in self._seen_nonces:
            return False
        secret = self.config.password.get_secret_value()
        expected = base64.b64encode(hashlib.sha1(nonce + created.encode() + secret.encode()).digest())
        if not (hmac.compare_digest(user.encode(), self.config.user.encode())
                and hmac.compare_digest(expected, (password.text or "").strip().encode())):
            return False
        self._seen_nonces.append(nonce)
        return True

    # ---- operations --------------------------------------------------------------------------
    def _soap(self, request: Request, root: ET.Element, call: ET.Element, op: str) -> Reply:
        if op != "GetSystemDateAndTime" and not self._authorised(root):
            self.stats.auth_failures += 1
            return fault(400, "Sender", "ter:NotAuthorized", "Sender not Authorized")
        handler = getattr(self, f"_op_{op}", None)
        if handler is None or OP_SERVICE.get(op) != SERVICES[request.path]:
            return fault(500, "Receiver", "ter:ActionNotSupported", f"{op} is not supported here")
        try:
            return handler(request, call)
        except (ValueError, TypeError) as exc:
            return fault(400, "Sender", "ter:InvalidArgVal", f"invalid argument: {exc}")

    def _base(self, request: Request) -> str:
        return f"http://{self.advertised_host or request.headers.get('host', 'localhost')}"

    def _op_GetSystemDateAndTime(self, request: Request, call: ET.Element) -> Reply:
        t = self.now()
        return _ok("<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
                   "<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>"
                   f"<tt:UTCDateTime><tt:Time><tt:Hour>{t.hour}</tt:Hour><tt:Minute>{t.minute}</tt:Minute>"
                   f"<tt:Second>{t.second}</tt:Second></tt:Time><tt:Date><tt:Year>{t.year}</tt:Year>"
                   f"<tt:Month>{t.month}</tt:Month><tt:Day>{t.day}</tt:Day></tt:Date></tt:UTCDateTime>"
                   "</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>")

    def _op_GetCapabilities(self, request: Request, call: ET.Element) -> Reply:
        base = self._base(request)
        return _ok("<tds:GetCapabilitiesResponse><tds:Capabilities>"
                   f"<tt:Device><tt:XAddr>{base}/onvif/device_service</tt:XAddr></tt:Device>"
                   f"<tt:Media><tt:XAddr>{base}/onvif/media_service</tt:XAddr></tt:Media>"
                   f"<tt:PTZ><tt:XAddr>{base}/onvif/ptz_service</tt:XAddr></tt:PTZ>"
                   "</tds:Capabilities></tds:GetCapabilitiesResponse>")

    def _op_GetProfiles(self, request: Request, call: ET.Element) -> Reply:
        c = self.config
        video = (f"<tt:VideoEncoderConfiguration token=\"enc\"><tt:Encoding>JPEG</tt:Encoding><tt:Resolution>"
                 f"<tt:Width>{c.width}</tt:Width><tt:Height>{c.height}</tt:Height></tt:Resolution>"
                 f"</tt:VideoEncoderConfiguration>")
        return _ok("<trt:GetProfilesResponse>"
                   f"<trt:Profiles token=\"profile_fixed\" fixed=\"true\"><tt:Name>overview</tt:Name>{video}"
                   "</trt:Profiles>"
                   f"<trt:Profiles token=\"{PTZ_PROFILE}\" fixed=\"true\"><tt:Name>ptz</tt:Name>{video}"
                   "<tt:PTZConfiguration token=\"ptz0\"><tt:Name>ptz</tt:Name></tt:PTZConfiguration>"
                   "</trt:Profiles></trt:GetProfilesResponse>")

    def _op_GetSnapshotUri(self, request: Request, call: ET.Element) -> Reply:
        token = call.findtext("trt:ProfileToken", "", NS)
        if token not in (PTZ_PROFILE, "profile_fixed"):
            return fault(400, "Sender", "ter:NoProfile", f"no profile '{token}'")
        return _ok("<trt:GetSnapshotUriResponse><trt:MediaUri>"
                   f"<tt:Uri>{self._base(request)}{SNAPSHOT_PATH}?profile={token}</tt:Uri>"
                   "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
                   "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout>"
                   "</trt:MediaUri></trt:GetSnapshotUriResponse>")

    def _check_profile(self, call: ET.Element) -> Reply | None:
        token = call.findtext("tptz:ProfileToken", "", NS)
        if token != PTZ_PROFILE:
            return fault(400, "Sender", "ter:NoProfile", f"profile '{token}' has no PTZ configuration")
        return None

    def _op_GetStatus(self, request: Request, call: ET.Element) -> Reply:
        if (bad := self._check_profile(call)) is not None:
            return bad
        x, y, z = self._to_space(self.mechanics.pose())
        state = "MOVING" if self.mechanics.moving() else "IDLE"
        return _ok("<tptz:GetStatusResponse><tptz:PTZStatus><tt:Position>"
                   f'<tt:PanTilt x="{x:.7f}" y="{y:.7f}" space="{SPACE.format("PanTilt", "Position")}"/>'
                   f'<tt:Zoom x="{z:.7f}" space="{SPACE.format("Zoom", "Position")}"/></tt:Position>'
                   f"<tt:MoveStatus><tt:PanTilt>{state}</tt:PanTilt><tt:Zoom>{state}</tt:Zoom></tt:MoveStatus>"
                   f"<tt:UtcTime>{self.now().strftime('%Y-%m-%dT%H:%M:%SZ')}</tt:UtcTime>"
                   "</tptz:PTZStatus></tptz:GetStatusResponse>")

    def _op_AbsoluteMove(self, request: Request, call: ET.Element) -> Reply:
        if (bad := self._check_profile(call)) is not None:
            return bad
        now = self._to_space(self.mechanics.pose())
        pt, zoom = call.find("tptz:Position/tt:PanTilt", NS), call.find("tptz:Position/tt:Zoom", NS)
        x = _coord(pt, "x", now[0], -1, 1)
        y = _coord(pt, "y", now[1], -1, 1)
        z = _coord(zoom, "x", now[2], 0, 1)
        self.mechanics.move_to(self._from_space(x, y, z))
        return _ok("<tptz:AbsoluteMoveResponse/>")

    def _op_RelativeMove(self, request: Request, call: ET.Element) -> Reply:
        if (bad := self._check_profile(call)) is not None:
            return bad
        r = self.ranges
        pt, zoom = call.find("tptz:Translation/tt:PanTilt", NS), call.find("tptz:Translation/tt:Zoom", NS)
        dx, dy = _coord(pt, "x", 0.0, -2, 2), _coord(pt, "y", 0.0, -2, 2)
        dz = _coord(zoom, "x", 0.0, -1, 1)
        self.mechanics.move_by(dx * (r.pan_max - r.pan_min) / 2, dy * (r.tilt_max - r.tilt_min) / 2,
                               dz * (r.zoom_max - r.zoom_min))
        return _ok("<tptz:RelativeMoveResponse/>")

    # ---- generic spaces ----------------------------------------------------------------------
    def _to_space(self, pose: Pose) -> tuple[float, float, float]:
        r = self.ranges
        return (-1 + 2 * (pose.pan - r.pan_min) / (r.pan_max - r.pan_min),
                -1 + 2 * (pose.tilt - r.tilt_min) / (r.tilt_max - r.tilt_min),
                (pose.zoom - r.zoom_min) / (r.zoom_max - r.zoom_min))

    def _from_space(self, x: float, y: float, z: float) -> Pose:
        r = self.ranges
        return Pose(r.pan_min + (x + 1) / 2 * (r.pan_max - r.pan_min),
                    r.tilt_min + (y + 1) / 2 * (r.tilt_max - r.tilt_min),
                    r.zoom_min + z * (r.zoom_max - r.zoom_min))


def _soap_call(body: bytes) -> tuple[ET.Element, ET.Element] | None:
    """(envelope, the body's first element) of a SOAP request; None when it is not one."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    soap_body = root.find("env:Body", NS)
    call = None if soap_body is None else next(iter(soap_body), None)
    return None if call is None else (root, call)


def _coord(element: ET.Element | None, name: str, default: float, lo: float, hi: float) -> float:
    """A coordinate attribute, `default` when absent; out of [lo, hi] is the caller's error."""
    text = None if element is None else element.get(name)
    if text is None:
        return default
    value = float(text)
    if not lo <= value <= hi:
        raise ValueError(f"{name}={value} is outside [{lo}, {hi}]")
    return value
