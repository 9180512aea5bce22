"""rq jobs of the dreamer queue. Arguments are ids; dreams travel through the store as shards."""

from __future__ import annotations

import uuid

from services.dreamer.phase import DreamHooks, dream, resolve_version
from shared import events
from shared.jobcontext import job_context
from shared.leases import LeaseManager
from shared.metrics import DREAM_SURPRISE, DREAMS
from shared.progress import JobProgress
from shared.queues import json_result
from shared.store import store_for


def generate_dreams(node: str | None = None, slot: str | None = None, version: str | None = None,
                    dreams: int | None = None) -> dict:
    """Dream from a published world-model version; returns where the shards are."""
    ctx = job_context(node)
    settings, job, client, keys = ctx.settings, ctx.job, ctx.client, ctx.keys
    slot, version = resolve_version(LeaseManager(client, keys, settings.node), settings, slot,
                                    version, ctx.upstream_result())
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
        return json_result(result, f"{__name__}.generate_dreams")
    finally:
        progress.finish(outcome)
