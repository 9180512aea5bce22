"""REST routes of the camera service (`/v1/...`)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from services.camera.controller import CameraController
from services.camera.drivers.base import CameraBadResponse, CameraError, CameraRangeError, CameraTimeout
from shared.config import Settings
from shared.schemas import CameraInfo, MoveRequest, PoseModel, RangesModel
from shared.store import encode_jpeg


def _controller(request: Request) -> CameraController:
    return request.app.state.controller


def _camera_errors(exc: CameraError) -> HTTPException:
    """Driver failures as HTTP errors: the camera's fault is a 502/504, the caller's a 422."""
    if isinstance(exc, CameraRangeError):
        return HTTPException(422, str(exc))
    if isinstance(exc, CameraTimeout):
        return HTTPException(504, f"camera timed out: {exc}")
    if isinstance(exc, CameraBadResponse):
        return HTTPException(502, f"camera answered garbage: {exc}")
    return HTTPException(502, f"camera error: {exc}")


def build_router(settings: Settings, guard) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["camera"])

    @router.get("/info", response_model=CameraInfo)
    def info(controller: CameraController = Depends(_controller)) -> CameraInfo:
        try:
            di = controller.info()
        except CameraError as exc:
            raise _camera_errors(exc) from None
        return CameraInfo(node=settings.node, camera=settings.camera.name, driver=di.driver,
                          ranges=RangesModel.of(di.ranges), hfov_deg_at_min_zoom=di.hfov_deg_at_min_zoom,
                          image_width=di.image_width, image_height=di.image_height, extra=di.extra)

    @router.get("/position", response_model=PoseModel)
    def position(controller: CameraController = Depends(_controller)) -> PoseModel:
        try:
            return PoseModel.of(controller.position())
        except CameraError as exc:
            raise _camera_errors(exc) from None

    @router.post("/move", response_model=PoseModel, dependencies=[Depends(guard)])
    def move(body: MoveRequest, controller: CameraController = Depends(_controller)) -> PoseModel:
        try:
            return PoseModel.of(controller.move(body.mode, body.pan, body.tilt, body.zoom))
        except CameraError as exc:
            raise _camera_errors(exc) from None

    @router.get("/snapshot", response_class=Response,
                responses={200: {"content": {"image/jpeg": {}}, "description": "JPEG, pose in headers"}})
    def snapshot(controller: CameraController = Depends(_controller)) -> Response:
        try:
            snap = controller.snapshot()
        except CameraError as exc:
            raise _camera_errors(exc) from None
        headers = {
            "X-PTZ-Pan": repr(snap.pose.pan), "X-PTZ-Tilt": repr(snap.pose.tilt),
            "X-PTZ-Zoom": repr(snap.pose.zoom), "X-PTZ-Captured-At": snap.captured_at.isoformat(),
            "Cache-Control": "no-store",
        }
        if snap.sim_time is not None:
            headers["X-PTZ-Sim-Time"] = repr(snap.sim_time)
        if snap.dynamic_fraction is not None:
            headers["X-PTZ-Dynamic-Fraction"] = repr(snap.dynamic_fraction)
        if snap.kind_fractions is not None:
            headers["X-PTZ-Kind-Fractions"] = json.dumps(snap.kind_fractions, separators=(",", ":"))
        body = encode_jpeg(snap.image, settings.collect.jpeg_quality)
        return Response(content=body, media_type="image/jpeg", headers=headers)

    return router
