"""The camera service's FastAPI app: `uvicorn --factory services.camera.app:create_app`."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.camera.controller import CameraController
from services.camera.drivers import make_driver
from services.camera.routes import build_router
from shared.api import install_common, token_guard
from shared.config import Settings, load_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    controller = CameraController(make_driver(settings), settings.camera.name)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        controller.close()

    app = FastAPI(title="ptzjepa camera", version="1", lifespan=lifespan)
    app.state.controller = controller
    app.state.settings = settings

    def readiness() -> list[str]:
        try:
            controller.info()
        except Exception as exc:
            return [f"camera: {exc}"]
        return []

    install_common(app, "camera", readiness)
    app.include_router(build_router(settings, token_guard(settings)))
    return app
