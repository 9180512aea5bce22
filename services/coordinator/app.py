"""The coordinator's FastAPI app: `uvicorn --factory services.coordinator.app:create_app`."""

from __future__ import annotations

from contextlib import asynccontextmanager

import redis
from fastapi import FastAPI

from shared.api import install_common, token_guard
from shared.config import Settings, load_settings
from shared.redis import client_for
from shared.store import store_for

from services.coordinator.maintenance import Housekeeper
from services.coordinator.routes import build_router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    client = client_for(settings)

    housekeeper = Housekeeper(client, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        housekeeper.start()
        yield
        housekeeper.stop()
        client.close()

    app = FastAPI(title="ptzjepa coordinator", version="1", lifespan=lifespan)
    app.state.redis = client
    app.state.store = store_for(settings)
    app.state.settings = settings

    def readiness() -> list[str]:
        try:
            client.ping()
        except redis.RedisError as exc:
            return [f"redis: {exc}"]
        return []

    install_common(app, "coordinator", readiness)
    app.include_router(build_router(settings, token_guard(settings)))
    return app
