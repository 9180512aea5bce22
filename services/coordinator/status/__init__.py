"""The coordinator's status page (`GET /`) and the small read-only endpoints it needs.

- `GET /`: the page (services/coordinator/status/assets.py), `GET /ui/status.js`: its script;
- `GET /v1/status`: nodes, their lifelong state, newest cycle, agent, running and recent phases with
  progress, the processes `ptzjepa up` supervises (`children`: state, pid, restarts, last exit),
  newest frame and newest published report;
- `GET /v1/frames/latest?node=N`: the newest frame record of a node (404 when it has none);
  `GET /v1/frames/latest.jpg?node=N`: that frame's JPEG;
- `GET /ui/reports/{node}/{folder}/{file}`: the files of a published analysis report (PNG, HTML,
  JSON) from the store.

All of them only read; none needs the API token (as the other GET endpoints).
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from services.coordinator.status.assets import PAGE, SCRIPT
from services.coordinator.status.data import FILE_RE, NODE_RE, REPORT_DIR_RE, LatestFrames, NodeList, snapshot
from shared.config import Settings
from shared.store import StoreError

NO_STORE = {"Cache-Control": "no-store"}
MEDIA = {"png": "image/png", "html": "text/html; charset=utf-8", "json": "application/json"}


def _node(value: str | None, settings: Settings) -> str:
    node = value or settings.node
    if not NODE_RE.match(node):
        raise HTTPException(422, f"node: '{node[:80]}' is not a valid node name")
    return node


def build_status_router(settings: Settings, frames: LatestFrames) -> APIRouter:
    router = APIRouter(tags=["status"])
    nodes = NodeList()

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE, headers=NO_STORE)

    @router.get("/ui/status.js", include_in_schema=False)
    def script() -> Response:
        return Response(SCRIPT, media_type="text/javascript", headers=NO_STORE)

    @router.get("/v1/status")
    def status(request: Request) -> dict:
        return snapshot(request.app.state.redis, request.app.state.store, settings, frames, nodes)

    def newest(node: str):
        try:
            record = frames.latest(node)
        except (OSError, StoreError) as exc:
            raise HTTPException(502, f"the store cannot be read: {exc}") from None
        if record is None:
            raise HTTPException(404, f"node {node} has no frames in the store yet")
        return record

    @router.get("/v1/frames/latest")
    def latest_frame(node: str | None = Query(None, description="default: this coordinator's node")) -> dict:
        return newest(_node(node, settings)).model_dump(mode="json")

    @router.get("/v1/frames/latest.jpg", response_class=Response,
                responses={200: {"content": {"image/jpeg": {}}}})
    def latest_frame_image(request: Request, node: str | None = Query(None)) -> Response:
        record = newest(_node(node, settings))
        try:
            data = request.app.state.store.read_bytes(record.path)
        except StoreError as exc:
            raise HTTPException(502, f"the newest frame cannot be read: {exc}") from None
        return Response(data, media_type="image/jpeg",
                        headers={**NO_STORE, "X-Frame-Id": record.frame_id})

    @router.get("/ui/reports/{node}/{folder}/{name}", include_in_schema=False)
    def report_file(request: Request, node: str, folder: str, name: str) -> Response:
        if not (NODE_RE.match(node) and REPORT_DIR_RE.match(folder) and FILE_RE.match(name)):
            raise HTTPException(404, "no such report file")
        try:
            data = request.app.state.store.read_bytes(f"reports/{node}/{folder}/{name}")
        except StoreError:
            raise HTTPException(404, "no such report file") from None
        return Response(data, media_type=MEDIA[name.rsplit(".", 1)[1]])

    return router


def install_status(app: FastAPI, settings: Settings) -> None:
    """Mount the status page and its endpoints on the coordinator app (needs app.state.store)."""
    app.include_router(build_status_router(settings, LatestFrames(app.state.store)))


__all__ = ["build_status_router", "install_status"]
