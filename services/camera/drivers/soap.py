"""Just enough SOAP 1.2 for the ONVIF calls the driver makes: envelopes, WS-Security, faults.

Why not a WSDL library: the driver uses seven operations; hand-written envelopes keep the driver
synchronous (like every other driver), on the same kept httpx session with the same timeouts and
retries, and without downloading or bundling WSDL files. Replies are parsed with ElementTree,
which resolves no external entities, and every way a reply can be unusable becomes a typed error.

Authentication is WS-Security UsernameToken with a PasswordDigest
(Base64(SHA-1(nonce + created + password))), which every ONVIF device must accept; the password
itself is never sent. `created` is shifted by the camera's clock offset (read from
GetSystemDateAndTime), because devices reject tokens whose time is more than a few minutes off.
"""

from __future__ import annotations

import base64
import hashlib
import os
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import httpx

from services.camera.drivers.base import CameraBadResponse
from services.camera.drivers.http import (
    ALWAYS,
    BUSY_PATTERNS,
    IDEMPOTENT,
    NEVER,
    CameraAuthError,
    failure,
    html_title,
    http_error,
    looks_like_html,
    snippet,
)

NS = {
    "env": "http://www.w3.org/2003/05/soap-envelope",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tptz": "http://www.onvif.org/ver20/ptz/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
}
PASSWORD_DIGEST = ("http://docs.oasis-open.org/wss/2004/01/"
                   "oasis-200401-wss-username-token-profile-1.0#PasswordDigest")
BASE64 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
SOAP_STATUS = (200, 400, 500)  # SOAP faults arrive as 400/500 with an envelope


def wsse_header(user: str, password: str, clock_offset_s: float = 0.0) -> str:
    """A fresh UsernameToken (new nonce each call, so a device can refuse replays)."""
    nonce = os.urandom(16)
    created = (datetime.now(UTC) + timedelta(seconds=clock_offset_s))
    created_text = created.strftime("%Y-%m-%dT%H:%M:%S.") + f"{created.microsecond // 1000:03d}Z"
    digest = base64.b64encode(hashlib.sha1(nonce + created_text.encode() + password.encode()).digest())
    return (f'<wsse:Security env:mustUnderstand="true" xmlns:wsse="{NS["wsse"]}" xmlns:wsu="{NS["wsu"]}">'
            f"<wsse:UsernameToken><wsse:Username>{_escape(user)}</wsse:Username>"
            f'<wsse:Password Type="{PASSWORD_DIGEST}">{digest.decode()}</wsse:Password>'
            f'<wsse:Nonce EncodingType="{BASE64}">{base64.b64encode(nonce).decode()}</wsse:Nonce>'
            f"<wsu:Created>{created_text}</wsu:Created></wsse:UsernameToken></wsse:Security>")


def envelope(body: str, security: str = "") -> bytes:
    ns = " ".join(f'xmlns:{k}="{v}"' for k, v in NS.items() if k not in ("wsse", "wsu"))
    header = f"<env:Header>{security}</env:Header>" if security else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?><env:Envelope {ns}>{header}'
            f"<env:Body>{body}</env:Body></env:Envelope>").encode()


def soap_headers(action: str) -> dict[str, str]:
    return {"Content-Type": f'application/soap+xml; charset=utf-8; action="{action}"'}


def parse_reply(response: httpx.Response, what: str, user: str = "") -> ET.Element:
    """The first element inside the reply's Body, or a typed error (fault, HTML, garbage...)."""
    text = response.text
    status = response.status_code
    retry_garbage = IDEMPOTENT if status == 200 or status >= 500 else NEVER
    if not text.strip():
        if status != 200:
            raise http_error(response, what)
        raise failure(CameraBadResponse, f"{what}: the camera sent an empty reply", IDEMPOTENT)
    if looks_like_html(text):
        raise failure(CameraBadResponse, f"{what}: HTTP {status} with an HTML error page "
                      f"'{html_title(text)}'", retry_garbage)
    if not text.lstrip().startswith("<"):
        retry = ALWAYS if BUSY_PATTERNS.search(text) else retry_garbage
        raise failure(CameraBadResponse, f"{what}: HTTP {status} with text instead of SOAP: "
                      f"'{snippet(text)}'", retry)
    try:
        root = ET.fromstring(response.content)
    except ET.ParseError as exc:
        raise failure(CameraBadResponse, f"{what}: malformed or truncated XML ({exc})",
                      retry_garbage) from None
    body = root.find("env:Body", NS)
    if body is None:
        raise failure(CameraBadResponse, f"{what}: the reply is not a SOAP 1.2 envelope", retry_garbage)
    fault = body.find("env:Fault", NS)
    if fault is not None:
        raise _fault(fault, what, user)
    if status != 200:
        raise http_error(response, what)
    children = list(body)
    if not children:
        raise failure(CameraBadResponse, f"{what}: the SOAP body is empty", IDEMPOTENT)
    return children[0]


def _fault(fault: ET.Element, what: str, user: str) -> Exception:
    """A SOAP fault as a typed error. Faults are answers, not accidents: never retried."""
    codes = [el.text.strip() for el in fault.iter(f"{{{NS['env']}}}Value") if el.text]
    reason = " ".join(t.strip() for el in fault.iter(f"{{{NS['env']}}}Text") if (t := el.text)) or "no reason"
    code = "/".join(codes) or "unknown"
    if any(c.endswith("NotAuthorized") for c in codes):
        return failure(CameraAuthError, f"{what}: the camera refused the WS-Security credentials "
                       f"of user '{user}' ({code}: {snippet(reason)}); check camera.user, the "
                       f"password and the camera's clock", NEVER)
    return failure(CameraBadResponse, f"{what}: SOAP fault {code}: {snippet(reason)}", NEVER)


def find_text(element: ET.Element, path: str, what: str) -> str:
    found = element.find(path, NS)
    text = "" if found is None else (found.text or "").strip()
    if not text:
        raise failure(CameraBadResponse, f"{what}: the reply lacks {path}", IDEMPOTENT)
    return text


def float_attr(element: ET.Element | None, name: str, what: str) -> float:
    text = None if element is None else element.get(name)
    if text is None:
        raise failure(CameraBadResponse, f"{what}: the reply lacks the {name} coordinate", IDEMPOTENT)
    try:
        return float(text)
    except ValueError:
        raise failure(CameraBadResponse, f"{what}: {name}='{snippet(text)}' is not a number",
                      IDEMPOTENT) from None


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
