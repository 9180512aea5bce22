"""What every ptzjepa FastAPI service has: health, readiness, metrics, auth, and clear errors.

Bad input always gets a 4xx whose `detail` says what is wrong; a 500 only ever means a bug, and
its body never carries a traceback or a secret.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.config import Settings
from shared.metrics import HTTP_LATENCY, HTTP_REQUESTS

log = logging.getLogger(__name__)
_bearer = HTTPBearer(auto_error=False)


def token_guard(settings: Settings) -> Callable:
    """A dependency that demands `Authorization: Bearer <api_token>` when a token is configured."""
    expected = settings.api_token.get_secret_value().encode() if settings.api_token else None

    def check(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
        if expected is None:
            return
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(401, "this endpoint needs 'Authorization: Bearer <token>'",
                                headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(credentials.credentials.encode(), expected):
            raise HTTPException(403, "the bearer token is not valid for this node")

    return check


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = tuple(err.get("loc", ()))
        inner = where[1:] if where[:1] == ("body",) else where
        loc = ".".join(str(p) for p in inner) or (where[0] if where else "request")
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install_common(app: FastAPI, service: str, readiness: Callable[[], list[str]],
                   before_scrape: Callable[[], None] | None = None) -> None:
    """Add /healthz, /readyz, /metrics, request metrics and error handlers to `app`.

    `readiness` returns the list of problems (empty when ready), e.g. ["redis: unreachable"];
    `before_scrape` refreshes gauges that are read on demand (e.g. queue depths).
    """

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": _describe_validation(exc),
                                                      "errors": _jsonable(exc.errors())})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(status_code=500, content={"detail": f"internal error ({type(exc).__name__})"})

    @app.middleware("http")
    async def _observe(request: Request, call_next):
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        HTTP_REQUESTS.labels(service, request.method, path, str(response.status_code)).inc()
        HTTP_LATENCY.labels(service, path).observe(time.perf_counter() - start)
        return response

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict:
        return {"status": "ok", "service": service}

    @app.get("/readyz", tags=["ops"])
    def readyz() -> JSONResponse:
        problems = readiness()
        if problems:
            return JSONResponse(status_code=503, content={"status": "not ready", "problems": problems})
        return JSONResponse(content={"status": "ready", "service": service})

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        if before_scrape is not None:
            try:
                before_scrape()
            except Exception:
                log.warning("refreshing metrics before a scrape failed", exc_info=True)
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _jsonable(errors: Sequence[Any]) -> list[dict]:
    """Validation errors without the raw input objects (which may not be JSON-serialisable)."""
    return [{k: (str(v) if k in ("ctx", "input") else v) for k, v in e.items() if k != "url"}
            for e in errors]
