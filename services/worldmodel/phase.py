"""One world-model training phase: lease a slot, resume it, train on recent frames, publish.

The order matters for safety:
1. lease a slot (bounded wait; `NoFreeSlot` names the holders) - heartbeats keep it while we work;
2. resume from the slot's latest published version (hash-verified) or start fresh;
3. train `steps` optimiser steps (the job's budget), continuing the slot's lifelong schedules,
   polling the lease and stop requests between steps - a lost lease ends the run and its work is
   thrown away, never published;
4. write the version's files (content-addressed, immutable), then publish through the fenced
   compare-and-set, which refuses a holder whose lease was taken over meanwhile;
5. release the lease in `finally`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from services.worldmodel.checkpoint import resumable_bytes, state_from_bytes
from services.worldmodel.config import TrainConfig
from services.worldmodel.data import FrameDataset
from services.worldmodel.setup import model_config, train_config
from services.worldmodel.trainer import FitResult, fit
from services.worldmodel.training import TrainState, make_train_state
from shared import versions
from shared.config import Settings
from shared.devices import torch_device
from shared.frames import LoadedFrames, load_frames
from shared.leases import Lease, LeaseLost, LeaseManager
from shared.models.checkpoint import share_bytes
from shared.models.world_model import build_world_model
from shared.store import Store

log = logging.getLogger(__name__)


@dataclass
class PhaseHooks:
    progress: Callable[[int, int, dict], None] = lambda done, total, info: None
    stop_requested: Callable[[], bool] = lambda: False


def _resume(store: Store, slot: str, record: dict | None, cfg: TrainConfig,
            device) -> tuple[TrainState | None, dict | None]:
    """The state of the slot's latest version, continued, or None for a fresh slot.

    Weights, optimiser moments, generator and the lifetime step counter carry over, so the
    lifelong schedules (docs/worldmodel.md) continue where the last job left them.
    """
    if record is None:
        return None, None
    data = versions.read_resume(store, slot, record["version"])
    state = state_from_bytes(data, cfg, device,
                             lifetime_step=lambda: _lineage_steps(store, slot, record["version"]))
    parent = {"slot": slot, "version": record["version"], "fence": record["fence"],
              "node": record["node"]}
    return state, parent


def _lineage_steps(store: Store, slot: str, version: str) -> int:
    """The lifetime steps up to `version`, for a resumable file from before lifelong schedules:
    the versions' own `steps` summed back along the parents, down to one that records its
    `lifetime_steps`."""
    total, seen = 0, set()
    current: tuple[str, str] | None = (slot, version)
    while current is not None and current not in seen:
        seen.add(current)
        meta = versions.read_meta(store, *current)
        if "lifetime_steps" in meta:
            return total + int(meta["lifetime_steps"])
        total += int(meta.get("steps", 0))
        parent = meta.get("parent")
        current = (parent["slot"], parent["version"]) if parent else None
    log.warning("slot %s: version %s predates lifelong schedules; continuing at lifetime step %d "
                "(its lineage's steps)", slot, version, total)
    return total


def train_slot(settings: Settings, store: Store, leases: LeaseManager, slot: str | None,
               hooks: PhaseHooks = PhaseHooks()) -> dict:
    started = time.time()
    wm = settings.worldmodel
    mcfg, tcfg = model_config(settings), train_config(settings)
    frames = load_frames(store, mcfg.encoder.img_size, node=settings.node,
                         include_other_nodes=wm.include_other_nodes, max_rounds=wm.max_rounds)
    ttl_ms = int(wm.lease_ttl_s * 1000)
    if slot is None:
        lease = leases.acquire_any(wm.slot_names(), ttl_ms=ttl_ms, wait_s=wm.lease_wait_s)
    else:
        lease = leases.acquire(slot, ttl_ms=ttl_ms, wait_s=wm.lease_wait_s)
    try:
        return _train_leased(settings, store, leases, lease, frames, mcfg, tcfg, hooks, started)
    finally:
        lease.release()


def _train_leased(settings, store, leases: LeaseManager, lease: Lease, frames: LoadedFrames, mcfg,
                  tcfg: TrainConfig, hooks: PhaseHooks, started: float) -> dict:
    slot = lease.slot
    dataset = FrameDataset(frames.images, frames.poses, frames.round_ids, frames.times,
                           settings.camera.ranges())
    record = leases.latest(slot)
    device = torch_device(settings)
    state, parent = _resume(store, slot, record, tcfg, device)
    model = state.model if state is not None else build_world_model(mcfg).to(device)
    if state is None:
        state = make_train_state(model, tcfg)
    lineage_epochs = _parent_epochs(store, slot, parent)
    # Where this job ran in the slot's lifelong schedules, for the version's record.
    schedule: dict = {"first_step": state.step, "schedule_steps": state.schedule_steps}
    run_steps = 0

    def on_progress(event: dict) -> None:
        nonlocal run_steps
        if event["kind"] == "step":
            run_steps += 1
            schedule.setdefault("lr_first", event["lr"])
            schedule.update(lr_last=event["lr"], momentum_last=event["momentum"])
            hooks.progress(run_steps, tcfg.steps,
                           {"epoch": event["epoch"], "loss": round(float(event["loss"]), 5),
                            "slot": slot, "lifetime_step": event["step"]})

    def should_stop() -> bool:
        return lease.lost.is_set() or hooks.stop_requested()

    result: FitResult = fit(model, dataset, tcfg, state=state, progress=on_progress,
                            should_stop=should_stop)
    lease.check()  # a lost lease throws the work away here: LeaseLost, nothing published
    meta = {
        "slot": slot, "parent": parent, "node": settings.node, "preset": settings.preset,
        "config": mcfg.to_dict(), "train_config": tcfg.to_dict(),
        "epochs": result.epochs, "lineage_epochs": lineage_epochs + result.epochs,
        "steps": result.steps, "lifetime_steps": result.lifetime_steps, "schedule": schedule,
        "stop_reason": result.stop_reason,
        "epoch_losses": result.epoch_losses, "frames_used": len(frames.frame_ids),
        "manifests": frames.manifests, "frame_nodes": frames.nodes, "skipped_frames": frames.skipped,
        "started_at": started, "finished_at": time.time(), "train_seconds": round(result.seconds, 3),
        "transitions_per_s": round(result.transitions_per_s, 3), "fence": lease.fence,
    }
    files = versions.write_version(store, slot, share_bytes(model, fp16=settings.worldmodel.share_fp16),
                                   resumable_bytes(result.state, tcfg), meta)
    published = versions.publish_version(leases, lease, files, store)
    return {"slot": slot, "version": files.version, "fence": published["fence"], "parent": parent,
            "stop_reason": result.stop_reason, "epochs": result.epochs, "steps": result.steps,
            "lifetime_steps": result.lifetime_steps, "time_capped": result.stop_reason == "time_budget",
            "final_loss": result.final_loss,
            "frames": len(frames.frame_ids), "skipped_frames": len(frames.skipped),
            "seconds": round(time.time() - started, 3),
            "transitions_per_s": round(result.transitions_per_s, 3)}


def _parent_epochs(store: Store, slot: str, parent: dict | None) -> int:
    if parent is None:
        return 0
    return int(versions.read_meta(store, slot, parent["version"]).get("lineage_epochs", 0))


__all__ = ["LeaseLost", "PhaseHooks", "train_slot"]
