"""One dreaming phase: imagined rollouts of a published world model, written as shards.

Dreams start from this node's recent real frames (encoded by the target encoder: the same state
space the agent sees at run time) and advance in batches (services.dreamer.rollout). The same
frames measure the model's actual error on the node's real transitions, the error map that gives
dreams their measured rewards (services.dreamer.error_map), the previous version of the slot
measured on them too gives the learning-progress rewards (services.dreamer.progress), and the
same rounds' manifests say how
long each action takes on this camera (shared.move_times): the seconds every dreamed step is
predicted for. The version
dreamed from is the one the cycle's world-model phase published, or one named by the caller, or
the newest published version of any slot.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from services.dreamer.error_map import ErrorMap, ErrorMapError, fit_error_map, measure_transitions
from services.dreamer.progress import fresh_model_like, progress_map
from services.dreamer.rollout import dream_from_frames, encode_frames
from shared import versions
from shared.config import Settings
from shared.devices import torch_device
from shared.dreams import Dreams, ObservationSpec, write_shards
from shared.frames import load_frames
from shared.keys import Keys
from shared.leases import LeaseManager
from shared.models.checkpoint import model_from_bytes
from shared.models.world_model import WorldModel
from shared.move_times import MoveTimes, node_move_times
from shared.pose import ActionScale, PoseRanges
from shared.store import Store

log = logging.getLogger(__name__)


class NoWorldModel(LookupError):
    pass


@dataclass
class DreamHooks:
    progress: Callable[[int, int], None] = lambda done, total: None
    stop_requested: Callable[[], bool] = lambda: False


def resolve_version(leases: LeaseManager, settings: Settings, slot: str | None,
                    version: str | None, upstream: dict | None) -> tuple[str, str]:
    if slot is not None:
        if version is None:
            record = leases.latest(slot)
            if record is None:
                raise NoWorldModel(f"slot {slot} has no published world model yet")
            version = record["version"]
        return slot, version
    if upstream and upstream.get("slot") and upstream.get("version"):
        return upstream["slot"], upstream["version"]
    newest = versions.newest(leases, settings.worldmodel.slot_names())
    if newest is None:
        raise NoWorldModel("no world model has been published yet: run the worldmodel phase first")
    return newest["slot"], newest["version"]


def dream(settings: Settings, store: Store, client: redis.Redis, *, slot: str, version: str,
          job_id: str, n_dreams: int | None = None, hooks: DreamHooks = DreamHooks()) -> dict:
    started = time.time()
    keys = Keys(settings.redis_prefix)
    cfg = settings.dreamer
    parent = previous_version(store, slot, version)
    with versions.reading(client, keys, slot, version, reader=job_id):
        device = torch_device(settings)
        model = model_from_bytes(versions.read_share(store, slot, version), device)
        old = None
        if cfg.error_map_transitions and parent is None:
            old = fresh_model_like(model)
        elif cfg.error_map_transitions and parent is not None:
            with versions.reading(client, keys, slot, parent, reader=job_id):
                old = model_from_bytes(versions.read_share(store, slot, parent), device)
        frames = load_frames(store, model.cfg.encoder.img_size, node=settings.node,
                             include_other_nodes=False, max_rounds=settings.worldmodel.max_rounds)
        move_times = node_move_times(store, settings.node, settings.worldmodel.max_rounds)
        seed = cfg.seed if cfg.seed is not None else random.SystemRandom().randrange(2**31)
        dreams, info = dream_batch(
            model, old, frames, settings.camera.ranges(), n_dreams=n_dreams or cfg.dreams,
            length=cfg.length, seed=seed, batch=cfg.batch,
            error_map_transitions=cfg.error_map_transitions, move_times=move_times,
            progress=hooks.progress, should_stop=hooks.stop_requested,
            meta={"slot": slot, "version": version, "node": settings.node})
    folder = f"dreams/{settings.node}/{job_id}"
    index = write_shards(store, folder, dreams, slot=slot, version=version, node=settings.node,
                         shard_size=cfg.shard_dreams, extra={"seed": seed, "job_id": job_id})
    elapsed = time.time() - started
    summary = {"folder": folder, "slot": slot, "version": version, "dreams": dreams.count,
               "length": dreams.length, "shards": len(index["shards"]), "seed": seed,
               "start_frames": len(frames.frame_ids),
               "mean_surprise": round(float(dreams.surprise.mean()), 6), **info,
               "progress_against": parent or "initialisation",
               "move_times": move_times.summary(),
               "dream_steps_per_s": round(dreams.count * dreams.length / max(elapsed, 1e-9), 2),
               "seconds": round(elapsed, 3)}
    client.set(keys.dreams_latest(settings.node), _json(summary))
    return summary


def previous_version(store: Store, slot: str, version: str) -> str | None:
    """The version `version` was trained from in the same slot (its lineage parent), if any."""
    parent = versions.read_meta(store, slot, version).get("parent")
    if isinstance(parent, dict) and parent.get("slot") == slot and parent.get("version"):
        return str(parent["version"])
    return None


def dream_batch(model: WorldModel, old: WorldModel | None, frames, ranges: PoseRanges, *,
                n_dreams: int, length: int, seed: int, batch: int, error_map_transitions: int,
                move_times: MoveTimes, scale: ActionScale = ActionScale(),
                spec: ObservationSpec = ObservationSpec(), progress=None, should_stop=None,
                meta: dict | None = None) -> tuple[Dreams, dict]:
    """The compute of a dream job on frames in memory (`.images` or `.frames`, `.poses`,
    `.round_ids`, `.times`): encode them, measure the error map and (with `old`, the previous
    model) the progress map on their real transitions, and dream. Returns (the dreams, a summary
    of the maps and the seconds each part took)."""
    images = frames.images if hasattr(frames, "images") else frames.frames
    t0 = time.monotonic()
    states, emap, pmap, measured = None, None, None, None  # without maps, only the dream starts
    if error_map_transitions:                                  # are encoded
        states = encode_frames(model, images)
        emap, measured = measured_error_map(model, states, frames, ranges, error_map_transitions,
                                            scale)
    t1 = time.monotonic()
    if emap is not None and old is not None:
        pmap = progress_map(old, model, images, frames.poses, frames.round_ids, frames.times,
                            ranges, scale, new_measured=measured,
                            max_transitions=error_map_transitions)
    t2 = time.monotonic()
    dreams = dream_from_frames(
        model, images, frames.poses, ranges, n_dreams=n_dreams, length=length, seed=seed,
        batch=batch, scale=scale, spec=spec, states=states, error_map=emap, progress_map=pmap,
        progress=progress, should_stop=should_stop, move_times=move_times, meta=meta)
    info = {"error_map": emap.summary() if emap is not None else None,
            "progress_map": pmap.summary() if pmap is not None else None,
            "error_map_s": round(t1 - t0, 3), "progress_s": round(t2 - t1, 3),
            "rollout_s": round(time.monotonic() - t2, 3)}
    return dreams, info


def measured_error_map(model, states, frames, ranges, max_transitions: int,
                       scale: ActionScale = ActionScale()) -> tuple[ErrorMap | None, dict | None]:
    """The model's measured error on the node's real transitions (services.dreamer.error_map)
    and the measurements behind it, or (None, None) when no round holds two frames or no
    transition held content in place (the measured rewards are then unavailable)."""
    try:
        measured = measure_transitions(model, states, frames.poses, frames.round_ids, ranges,
                                       scale, max_transitions=max_transitions, times=frames.times)
        return fit_error_map(measured["source_poses"], measured["dest_poses"],
                             measured["actions"], measured["errors"], measured["token_errors"],
                             model.cfg.predictor.warp_hfov_deg), measured
    except ErrorMapError as e:
        log.warning("dreams get no measured error map: %s", e)
        return None, None


def _json(obj) -> str:
    import json

    return json.dumps(obj, sort_keys=True)
