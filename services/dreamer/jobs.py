"""rq jobs of the dreamer queue. Arguments are ids; dreams travel through the store as shards."""

from __future__ import annotations

import uuid

from rq import get_current_job

from shared import events
from shared.config import load_settings
from shared.keys import Keys
from shared.metrics import DREAM_SURPRISE, DREAMS
from shared.leases import LeaseManager
from shared.progress import JobProgress
from shared.redis import client_for
from shared.store import store_for

from services.dreamer.phase import DreamHooks, dream, resolve_version


def upstream_result() -> dict | None:
    """The result of the job this one depends on (the previous phase of its cycle), if any."""
    job = get_current_job()
    dependency = job.dependency if job is not None else None
    return dependency.return_value() if dependency is not None else None


def generate_dreams(node: str | None = None, slot: str | None = None, version: str | None = None,
                    dreams: int | None = None) -> dict:
    """Dream from a published world-model version; returns where the shards are."""
    settings = load_settings()
    if node is not None and node != settings.node:
        settings = settings.model_copy(update={"node": node})
    job = get_current_job()
    client = job.connection if job else client_for(settings)
    keys = Keys(settings.redis_prefix)
    slot, version = resolve_version(LeaseManager(client, keys, settings.node), settings, slot,
                                    version, upstream_result())
    total = dreams or settings.dreamer.dreams
    progress = JobProgress(client, keys, settings.node, "dreamer", total=total)
    outcome = "failed"
    try:
        result = dream(settings, store_for(settings), client, slot=slot, version=version,
                       job_id=job.id if job else f"inline-{uuid.uuid4().hex[:8]}", n_dreams=dreams,
                       hooks=DreamHooks(progress=lambda done, _total: progress.update(done),
                                        stop_requested=progress.stop_requested))
        outcome = "ok"
        DREAMS.labels(settings.node, slot).inc(result["dreams"])
        DREAM_SURPRISE.labels(settings.node, slot).set(result["mean_surprise"])
        events.emit(client, keys, "dreams.written", settings.node, folder=result["folder"],
                    slot=slot, version=version, dreams=result["dreams"])
        return result
    finally:
        progress.finish(outcome)
