"""The coordinator's FastAPI app: `uvicorn --factory services.coordinator.app:create_app`."""

from __future__ import annotations

from contextlib import asynccontextmanager

import redis
from fastapi import FastAPI

from services.coordinator.children import export_child_metrics
from services.coordinator.maintenance import Housekeeper
from services.coordinator.routes import routers
from services.coordinator.status import install_status
from shared.api import install_common, token_guard
from shared.config import Settings, load_settings
from shared.keys import NODE_QUEUES, QUEUE_NAMES, Keys
from shared.metrics import QUEUE_DEPTH
from shared.queues import job_queue
from shared.redis import client_for
from shared.store import store_for


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

    keys = Keys(settings.redis_prefix)

    def queue_depths() -> None:
        for name in QUEUE_NAMES:
            queue_name = keys.queue(name, settings.node if name in NODE_QUEUES else None)
            QUEUE_DEPTH.labels(queue_name).set(job_queue(queue_name, client).count)
        export_child_metrics(client, keys, settings.node)  # the processes `ptzjepa up` supervises

    install_common(app, "coordinator", readiness, before_scrape=queue_depths)
    for router in routers(settings, token_guard(settings)):
        app.include_router(router)
    install_status(app, settings)  # GET / (the status page) and its read-only endpoints
    return app
