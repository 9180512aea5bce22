"""One world-model training phase: lease a slot, resume it, train on recent frames, publish.

The order matters for safety:
1. lease a slot (bounded wait; `NoFreeSlot` names the holders) - heartbeats keep it while we work;
2. resume from the slot's latest published version (hash-verified) or start fresh;
3. train, polling the lease and stop requests between steps - a lost lease ends the run and its
   work is thrown away, never published;
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


def _resume(store: Store, slot: str, record: dict | None, cfg: TrainConfig, steps: int,
            device) -> tuple[TrainState | None, dict | None]:
    """A training state continuing the slot's latest version, or a fresh one.

    Each job is a new run over the inherited weights and optimizer moments: its schedules
    (warm-up, cosine LR, EMA momentum) restart, because lifelong training gets new data every
    cycle and a schedule that had decayed to its floor would stop it from learning.
    """
    if record is None:
        return None, None
    data = versions.read_resume(store, slot, record["version"])
    inherited = state_from_bytes(data, cfg, device)
    state = make_train_state(inherited.model, cfg, steps)
    state.optimizer = inherited.optimizer
    state.generator = inherited.generator
    parent = {"slot": slot, "version": record["version"], "fence": record["fence"],
              "node": record["node"]}
    return state, parent


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
    dataset = FrameDataset(frames.images, frames.poses, frames.round_ids, settings.camera.ranges())
    record = leases.latest(slot)
    steps_per_epoch = tcfg.steps_per_epoch or _steps_per_epoch(dataset, tcfg)
    total_steps = tcfg.epochs * steps_per_epoch
    device = torch_device(settings)
    state, parent = _resume(store, slot, record, tcfg, total_steps, device)
    model = state.model if state is not None else build_world_model(mcfg).to(device)
    if state is None:
        state = make_train_state(model, tcfg, total_steps)
    lineage_epochs = _parent_epochs(store, slot, parent)

    def on_progress(event: dict) -> None:
        if event["kind"] == "step":
            hooks.progress(event["step"], event["total_steps"],
                           {"epoch": event["epoch"], "loss": round(float(event["loss"]), 5), "slot": slot})

    def should_stop() -> bool:
        return lease.lost.is_set() or hooks.stop_requested()

    result: FitResult = fit(model, dataset, tcfg, state=state, progress=on_progress,
                            should_stop=should_stop)
    lease.check()  # a lost lease throws the work away here: LeaseLost, nothing published
    meta = {
        "slot": slot, "parent": parent, "node": settings.node, "preset": settings.preset,
        "config": mcfg.to_dict(), "train_config": tcfg.to_dict(),
        "epochs": result.epochs, "lineage_epochs": lineage_epochs + result.epochs,
        "steps": result.steps, "stop_reason": result.stop_reason,
        "epoch_losses": result.epoch_losses, "frames_used": len(frames.frame_ids),
        "manifests": frames.manifests, "frame_nodes": frames.nodes, "skipped_frames": frames.skipped,
        "started_at": started, "finished_at": time.time(), "train_seconds": round(result.seconds, 3),
        "transitions_per_s": round(result.transitions_per_s, 3), "fence": lease.fence,
    }
    files = versions.write_version(store, slot, share_bytes(model, fp16=settings.worldmodel.share_fp16),
                                   resumable_bytes(result.state, tcfg), meta)
    published = versions.publish_version(leases, lease, files, store)
    return {"slot": slot, "version": files.version, "fence": published["fence"], "parent": parent,
            "stop_reason": result.stop_reason, "epochs": result.epochs,
            "final_loss": result.epoch_losses[-1] if result.epoch_losses else None,
            "frames": len(frames.frame_ids), "skipped_frames": len(frames.skipped),
            "seconds": round(time.time() - started, 3),
            "transitions_per_s": round(result.transitions_per_s, 3)}


def _steps_per_epoch(dataset: FrameDataset, cfg: TrainConfig) -> int:
    """As fit() counts them: about one pass over the frames, in windows of whole rounds."""
    rounds = [len(r) for r in dataset.rounds() if len(r) >= 2]
    window = min([cfg.window_len, *rounds]) if rounds else cfg.window_len
    return max(1, -(-len(dataset) // (window * cfg.windows_per_batch)))


def _parent_epochs(store: Store, slot: str, parent: dict | None) -> int:
    if parent is None:
        return 0
    return int(versions.read_meta(store, slot, parent["version"]).get("lineage_epochs", 0))


__all__ = ["LeaseLost", "PhaseHooks", "train_slot"]
