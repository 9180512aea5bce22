"""HTTP client of the camera service, used by every job that drives a camera.

Jobs never talk to a camera driver directly: the camera service owns the one driver of its camera.
Transient failures (connection refused or reset, 502/503/504 from the service) are retried a few
times with backoff; anything else raises `CameraServiceError` with the service's own message.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import httpx

from shared.pose import Pose
from shared.schemas import CameraInfo, PoseModel

if TYPE_CHECKING:
    from shared.config import Settings

TRANSIENT_STATUS = (502, 503, 504)


class CameraServiceError(RuntimeError):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ClientSnapshot:
    jpeg: bytes
    pose: Pose
    captured_at: datetime
    sim_time: float | None
    dynamic_fraction: float | None
    kind_fractions: dict[str, float] | None = None  # simulator ground truth: view share per zone kind


class CameraClient:
    def __init__(self, base_url: str, token: str | None = None, timeout_s: float = 30.0,
                 retries: int = 3, backoff_s: float = 0.2):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)
        self.base_url = base_url
        self.retries = retries
        self.backoff_s = backoff_s

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CameraClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        last: str = ""
        for attempt in range(self.retries + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError,
                    httpx.TimeoutException) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    return response
                detail = _detail(response)
                if response.status_code not in TRANSIENT_STATUS:
                    raise CameraServiceError(f"{method} {path}: {response.status_code} {detail}",
                                             response.status_code)
                last = f"{response.status_code} {detail}"
            if attempt < self.retries:
                time.sleep(self.backoff_s * 2 ** attempt)
        raise CameraServiceError(f"{method} {path} failed after {self.retries + 1} tries: {last}")

    def info(self) -> CameraInfo:
        return CameraInfo.model_validate(self._request("GET", "/v1/info").json())

    def position(self) -> Pose:
        return PoseModel.model_validate(self._request("GET", "/v1/position").json()).to_pose()

    def move(self, mode: str, pan: float, tilt: float, zoom: float) -> Pose:
        body = {"mode": mode, "pan": pan, "tilt": tilt, "zoom": zoom}
        return PoseModel.model_validate(self._request("POST", "/v1/move", json=body).json()).to_pose()

    def snapshot(self) -> ClientSnapshot:
        r = self._request("GET", "/v1/snapshot")
        if r.headers.get("content-type") != "image/jpeg" or not r.content:
            raise CameraServiceError(f"GET /v1/snapshot: expected a JPEG, got "
                                     f"{r.headers.get('content-type')} ({len(r.content)} bytes)")
        h = r.headers
        try:
            pose = Pose(float(h["X-PTZ-Pan"]), float(h["X-PTZ-Tilt"]), float(h["X-PTZ-Zoom"]))
            captured = datetime.fromisoformat(h["X-PTZ-Captured-At"])
        except (KeyError, ValueError) as exc:
            raise CameraServiceError(f"GET /v1/snapshot: pose headers missing or bad ({exc})") from None
        return ClientSnapshot(
            jpeg=r.content, pose=pose, captured_at=captured,
            sim_time=float(h["X-PTZ-Sim-Time"]) if "X-PTZ-Sim-Time" in h else None,
            dynamic_fraction=float(h["X-PTZ-Dynamic-Fraction"]) if "X-PTZ-Dynamic-Fraction" in h else None,
            kind_fractions=_kind_fractions(h.get("X-PTZ-Kind-Fractions")))


def camera_client_for(settings: Settings) -> CameraClient:
    """A client of this node's camera service, with the settings' API token and timeout."""
    token = settings.api_token.get_secret_value() if settings.api_token else None
    return CameraClient(settings.services.camera_base_url(), token=token,
                        timeout_s=settings.camera.client_timeout_s())


def _kind_fractions(header: str | None) -> dict[str, float] | None:
    """The X-PTZ-Kind-Fractions header (a JSON object of kind -> fraction), None when absent."""
    if header is None:
        return None
    try:
        value = json.loads(header)
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        return {str(k): float(v) for k, v in value.items()}
    except (ValueError, TypeError) as exc:
        raise CameraServiceError(f"GET /v1/snapshot: bad X-PTZ-Kind-Fractions header ({exc})") from None


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body.get("detail", body)) if isinstance(body, dict) else str(body)
    except ValueError:
        return response.text[:200]
