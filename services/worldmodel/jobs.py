"""rq jobs of the worldmodel queue. Arguments are ids; frames and weights travel through the store."""

from __future__ import annotations

from services.worldmodel.phase import PhaseHooks, train_slot
from shared import events, versions
from shared.jobcontext import job_context
from shared.leases import LeaseManager, NoFreeSlot
from shared.metrics import LEASE_EVENTS, LEASE_WAIT, WM_LOSS, WM_VERSIONS
from shared.progress import JobProgress
from shared.queues import json_result
from shared.store import store_for


def train_world_model(node: str | None = None, slot: str | None = None) -> dict:
    """Train a world-model slot (a free one when `slot` is None) and publish a new version."""
    ctx = job_context(node)
    settings, client, keys = ctx.settings, ctx.client, ctx.keys
    progress = JobProgress(client, keys, settings.node, "worldmodel", total=1)

    def on_progress(done: int, total: int, info: dict) -> None:
        progress.total = max(total, 1)
        progress.update(done, **info)
        if "loss" in info and "slot" in info:
            WM_LOSS.labels(settings.node, info["slot"]).set(info["loss"])

    def on_lease_event(event: str, slot: str, data: dict) -> None:
        LEASE_EVENTS.labels(settings.node, event).inc()
        if event in ("granted", "no_free_slot") and "waited_s" in data:
            LEASE_WAIT.labels(settings.node).observe(float(data["waited_s"]))

    leases = LeaseManager(client, keys, settings.node, on_event=on_lease_event)
    outcome = "failed"
    try:
        try:
            result = train_slot(settings, store_for(settings), leases, slot,
                                PhaseHooks(progress=on_progress, stop_requested=progress.stop_requested))
        except NoFreeSlot as exc:
            # Every slot is busy with other nodes' training: report it, and let the cycle go on
            # with the newest published version (if there is none, there is nothing to go on with).
            newest = versions.newest(leases, settings.worldmodel.slot_names())
            if newest is None:
                raise
            outcome = "no_free_slot"
            events.emit(client, keys, "worldmodel.skipped", settings.node, reason=str(exc))
            return json_result({"skipped": True, "reason": f"no free slot: {exc}", "slot": newest["slot"],
                                "version": newest["version"], "fence": newest["fence"], "parent": None},
                               f"{__name__}.train_world_model")
        outcome = "stopped" if result["stop_reason"] == "stopped" else "ok"
        WM_VERSIONS.labels(settings.node, result["slot"]).inc()
        events.emit(client, keys, "model.published", settings.node, slot=result["slot"],
                    version=result["version"], fence=result["fence"], parent=result["parent"])
        return json_result(result, f"{__name__}.train_world_model")
    finally:
        progress.finish(outcome)
