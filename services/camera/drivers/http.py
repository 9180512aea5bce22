"""The HTTP machinery every real-camera driver shares: one kept session, digest auth, timeouts,
retries with backoff, and typed errors for every way a camera reply goes wrong.

Why one module: Hanwha, Axis and ONVIF cameras fail in the same ways, and the original got each of
them wrong (no timeouts, `sys.exit` on a 401, error bodies crashing the
parser, the password in logs). Here:

- One `httpx.Client` per camera with `httpx.DigestAuth`: the auth object keeps the last challenge
  and answers the next request pre-emptively (nc incremented), so a session pays for one 401, not
  one per call.
- Every request has a timeout (`timeout_s`); nothing waits forever.
- Each failure carries a retry class: `always` (the camera did not act: connection refused, a 503,
  "Driver is initiating. Please try again later."), `idempotent` (the camera may have acted: a read
  timeout, a reply cut off, a 500) or `never` (401/403, a 404, a SOAP fault). Relative moves are
  not idempotent, so a timed-out relative move is reported rather than repeated.
- Messages name the call, the endpoint (scheme://host:port, never a query string) and the reason;
  the password is scrubbed from any text that could carry it, and exceptions are raised `from None`
  so no httpx object rides along in a traceback.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import TypeVar

import cv2
import httpx
import numpy as np
from pydantic import SecretStr

from services.camera.drivers.base import CameraBadResponse, CameraError, CameraTimeout

log = logging.getLogger(__name__)
T = TypeVar("T")

ALWAYS, IDEMPOTENT, NEVER = "always", "idempotent", "never"
OK_STATUS = range(200, 300)
# Texts cameras answer with a 200 while they are busy: the command was not carried out.
BUSY_PATTERNS = re.compile(r"(?i)try again|initiating|busy|not ready|temporarily unavailable")
ERROR_PATTERNS = re.compile(r"(?i)^\s*(NG\b|error\b|Error Code)|\berror\s*:")


class CameraAuthError(CameraError):
    """The camera refused our credentials (HTTP 401/403, or an ONVIF NotAuthorized fault)."""


def failure(cls: type[CameraError], message: str, retry: str) -> CameraError:
    """An exception of `cls` tagged with its retry class (ALWAYS, IDEMPOTENT or NEVER)."""
    exc = cls(message)
    exc.retry = retry  # type: ignore[attr-defined]
    return exc


@dataclass(frozen=True)
class ConnectionOptions:
    host: str
    port: int | None
    user: str
    password: SecretStr
    scheme: str = "http"
    timeout_s: float = 5.0
    verify_tls: bool = True
    retries: int = 3
    backoff_s: float = 0.2
    max_backoff_s: float = 2.0

    @property
    def base_url(self) -> str:
        port = self.port or (443 if self.scheme == "https" else 80)
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{self.scheme}://{host}:{port}"


class CameraHttp:
    """A camera's HTTP session. Not thread-safe by itself: the camera controller serialises calls."""

    def __init__(self, options: ConnectionOptions, camera: str = "camera"):
        self.options = options
        self.camera = camera
        self.endpoint = options.base_url
        secret = options.password.get_secret_value()
        self._secrets = [s for s in {secret} if s]  # what must never leave this object in a message
        self.client = httpx.Client(base_url=self.endpoint, auth=httpx.DigestAuth(options.user, secret),
                                   timeout=httpx.Timeout(options.timeout_s), verify=options.verify_tls,
                                   follow_redirects=False, headers={"User-Agent": "ptzjepa-camera"})

    def close(self) -> None:
        self.client.close()

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def request(self, method: str, path: str, *, what: str, parse: Callable[[httpx.Response], T],
                params: dict | None = None, content: bytes | Callable[[], bytes] | None = None,
                headers: dict | None = None, idempotent: bool = True,
                accept: Container[int] = OK_STATUS, retries: int | None = None) -> T:
        """Send, check and parse, retrying transient failures with exponential backoff + jitter.

        `parse` turns an accepted response into a value and raises `failure(...)` errors for
        bodies it cannot use. The last error is raised with the number of tries in its message.
        A callable `content` is called for each try (a WS-Security token must not be replayed).
        """
        attempts = 1 + (self.options.retries if retries is None else retries)
        err: CameraError | None = None
        for attempt in range(attempts):
            if attempt:
                delay = min(self.options.max_backoff_s, self.options.backoff_s * 2 ** (attempt - 1))
                delay *= 0.5 + random.random() / 2
                log.info("camera %s: %s; retry %d/%d in %.2f s", self.camera, err, attempt,
                         attempts - 1, delay)
                time.sleep(delay)
            try:
                body = content() if callable(content) else content
                response = self.client.request(method, path, params=params, content=body,
                                               headers=headers)
                return self._accept(response, what, accept, parse)
            except httpx.TimeoutException as exc:
                err = failure(CameraTimeout, f"{what}: no answer from {self.endpoint} within "
                              f"{self.options.timeout_s:g} s ({_kind(exc)})",
                              ALWAYS if isinstance(exc, httpx.ConnectTimeout) else IDEMPOTENT)
            except httpx.ConnectError as exc:
                err = failure(CameraError, f"{what}: cannot connect to {self.endpoint} ({_reason(exc)})",
                              ALWAYS)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                err = failure(CameraBadResponse, f"{what}: the reply from {self.endpoint} was cut off "
                              f"({_reason(exc)})", IDEMPOTENT)
            except httpx.HTTPError as exc:
                err = failure(CameraError, f"{what}: HTTP failure talking to {self.endpoint} "
                              f"({type(exc).__name__})", NEVER)
            except CameraError as exc:
                err = exc
            retry = getattr(err, "retry", NEVER)
            if retry == NEVER or (retry == IDEMPOTENT and not idempotent):
                break
        assert err is not None
        tries = attempt + 1
        message = self.scrub(str(err) + (f" (gave up after {tries} tries)" if tries > 1 else ""))
        raise type(err)(message) from None

    def _accept(self, response: httpx.Response, what: str, accept: Container[int],
                parse: Callable[[httpx.Response], T]) -> T:
        status = response.status_code
        if status in (401, 403):
            raise failure(CameraAuthError, f"{what}: the camera at {self.endpoint} refused user "
                          f"'{self.options.user}' (HTTP {status}); check camera.user and the "
                          f"password (PTZJEPA_CAMERA__PASSWORD or PTZJEPA_CAMERA__PASSWORD_FILE)", NEVER)
        if status not in accept:
            raise http_error(response, what)
        try:
            return parse(response)
        except CameraError:
            raise
        except (ValueError, KeyError, IndexError, TypeError) as exc:  # a parser met garbage
            raise failure(CameraBadResponse, f"{what}: unusable reply ({type(exc).__name__}: "
                          f"{snippet(str(exc))})", IDEMPOTENT) from None


def http_error(response: httpx.Response, what: str) -> CameraError:
    """A non-accepted status as a typed error: 5xx and 408/429 are worth retrying, other 4xx not."""
    status = response.status_code
    if status in (408, 429, 503):
        retry = ALWAYS
    elif status >= 500:
        retry = IDEMPOTENT
    else:
        retry = NEVER
    text = response.text
    if looks_like_html(text):
        detail = f"an HTML error page '{html_title(text)}'"
    elif BUSY_PATTERNS.search(text):
        detail, retry = f"'{snippet(text)}'", ALWAYS
    else:
        detail = f"'{snippet(text)}'" if text.strip() else "no body"
    return failure(CameraBadResponse, f"{what}: HTTP {status} with {detail}", retry)


def looks_like_html(text: str) -> bool:
    head = text.lstrip()[:200].lower()
    return head.startswith(("<!doctype html", "<html")) or "<body" in head or "<title" in head


def html_title(text: str) -> str:
    match = re.search(r"(?is)<title[^>]*>(.*?)</title>", text) or re.search(r"(?is)<h1[^>]*>(.*?)</h1>", text)
    return snippet(re.sub(r"<[^>]+>", "", match.group(1))) if match else "untitled"


def snippet(text: str, limit: int = 100) -> str:
    """One printable line of at most `limit` characters, for messages."""
    flat = " ".join(re.sub(r"[^\x20-\x7e]", " ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def check_text(response: httpx.Response, what: str, allow_empty: bool = False) -> str:
    """The body as text, or a typed error for an empty body, an HTML page or a camera error text.

    Cameras answer errors with a 200 and a text ("Driver is initiating. Please try again later.",
    "NG / Error Code: 600", "Error: ..."), so a 200 alone proves nothing.
    """
    text = response.text
    if not text.strip():
        if allow_empty:
            return ""
        raise failure(CameraBadResponse, f"{what}: the camera sent an empty reply", IDEMPOTENT)
    if looks_like_html(text):
        raise failure(CameraBadResponse, f"{what}: the camera sent an HTML page "
                      f"'{html_title(text)}' instead of an answer", IDEMPOTENT)
    if BUSY_PATTERNS.search(text):
        raise failure(CameraBadResponse, f"{what}: the camera is busy: '{snippet(text)}'", ALWAYS)
    if ERROR_PATTERNS.search(text):
        raise failure(CameraBadResponse, f"{what}: the camera answered an error: '{snippet(text)}'",
                      NEVER)
    return text


def parse_key_values(text: str, what: str, keys: tuple[str, ...]) -> dict[str, float]:
    """`Pan=1.5` / `pan=1.5` / `Channel.0.Pan=1.5` lines -> {"pan": 1.5, ...}; every key required."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if not sep:
            continue
        key = name.strip().rsplit(".", 1)[-1].lower()
        if key in keys and value.strip():  # an empty value is a reply cut short: "missing"
            try:
                found[key] = float(value.strip())
            except ValueError:
                raise failure(CameraBadResponse, f"{what}: '{snippet(line)}' is not a number",
                              IDEMPOTENT) from None
    missing = [k for k in keys if k not in found]
    if missing:
        raise failure(CameraBadResponse, f"{what}: the reply lacks {', '.join(missing)} "
                      f"(truncated or not a position: '{snippet(text)}')", IDEMPOTENT)
    bad = [k for k, v in found.items() if not np.isfinite(v)]
    if bad:
        raise failure(CameraBadResponse, f"{what}: non-finite {', '.join(bad)} in the reply", IDEMPOTENT)
    return found


def decode_jpeg(response: httpx.Response, what: str) -> np.ndarray:
    """A complete JPEG body as an RGB uint8 array, or a typed error.

    The start and end markers are checked before decoding because libjpeg happily decodes a
    truncated file into a half-grey image, which would enter the training data unnoticed.
    """
    body = response.content
    ctype = response.headers.get("content-type", "").lower()
    if not body.startswith(b"\xff\xd8"):
        if "image" not in ctype:
            check_text(response, what)  # raises with the camera's own words
        raise failure(CameraBadResponse, f"{what}: {len(body)} bytes that are not a JPEG "
                      f"(content-type '{ctype or 'none'}')", IDEMPOTENT)
    if b"\xff\xd9" not in body[-64:]:
        raise failure(CameraBadResponse, f"{what}: the JPEG is truncated ({len(body)} bytes, "
                      f"no end marker)", IDEMPOTENT)
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.ndim != 3:
        raise failure(CameraBadResponse, f"{what}: {len(body)} bytes that do not decode as a JPEG",
                      IDEMPOTENT)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _reason(exc: Exception) -> str:
    return snippet(str(exc) or type(exc).__name__, 120)


def _kind(exc: httpx.TimeoutException) -> str:
    return {httpx.ConnectTimeout: "connect", httpx.ReadTimeout: "read", httpx.WriteTimeout: "write",
            httpx.PoolTimeout: "pool"}.get(type(exc), "timeout") + " timeout"
