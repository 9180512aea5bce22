"""One dreaming phase: imagined rollouts of a published world model, written as shards.

Dreams start from this node's recent real frames (encoded by the target encoder: the same state
space the agent sees at run time) and advance in batches (services.dreamer.rollout). The same
frames measure the model's actual error on the node's real transitions, the error map that gives
dreams their measured rewards (services.dreamer.error_map), and the same rounds' manifests say how
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

from services.dreamer.error_map import ErrorMap, ErrorMapError, error_map_from_frames
from services.dreamer.rollout import dream_from_frames, encode_frames
from shared import versions
from shared.config import Settings
from shared.devices import torch_device
from shared.dreams import write_shards
from shared.frames import load_frames
from shared.keys import Keys
from shared.leases import LeaseManager
from shared.models.checkpoint import model_from_bytes
from shared.move_times import node_move_times
from shared.pose import ActionScale
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
    with versions.reading(client, keys, slot, version, reader=job_id):
        model = model_from_bytes(versions.read_share(store, slot, version), torch_device(settings))
        frames = load_frames(store, model.cfg.encoder.img_size, node=settings.node,
                             include_other_nodes=False, max_rounds=settings.worldmodel.max_rounds)
        move_times = node_move_times(store, settings.node, settings.worldmodel.max_rounds)
        seed = cfg.seed if cfg.seed is not None else random.SystemRandom().randrange(2**31)
        ranges = settings.camera.ranges()
        states, emap = None, None  # without a map, only the dream starts are encoded
        if cfg.error_map_transitions:
            states = encode_frames(model, frames.images)
            emap = measured_error_map(model, states, frames, ranges, cfg.error_map_transitions)
        dreams = dream_from_frames(
            model, frames.images, frames.poses, ranges,
            n_dreams=n_dreams or cfg.dreams, length=cfg.length, seed=seed, batch=cfg.batch,
            states=states, error_map=emap, progress=hooks.progress,
            should_stop=hooks.stop_requested, move_times=move_times,
            meta={"slot": slot, "version": version, "node": settings.node})
    folder = f"dreams/{settings.node}/{job_id}"
    index = write_shards(store, folder, dreams, slot=slot, version=version, node=settings.node,
                         shard_size=cfg.shard_dreams, extra={"seed": seed, "job_id": job_id})
    elapsed = time.time() - started
    summary = {"folder": folder, "slot": slot, "version": version, "dreams": dreams.count,
               "length": dreams.length, "shards": len(index["shards"]), "seed": seed,
               "start_frames": len(frames.frame_ids),
               "mean_surprise": round(float(dreams.surprise.mean()), 6),
               "error_map": emap.summary() if emap is not None else None,
               "move_times": move_times.summary(),
               "dream_steps_per_s": round(dreams.count * dreams.length / max(elapsed, 1e-9), 2),
               "seconds": round(elapsed, 3)}
    client.set(keys.dreams_latest(settings.node), _json(summary))
    return summary


def measured_error_map(model, states, frames, ranges, max_transitions: int) -> ErrorMap | None:
    """The model's measured error on the node's real transitions (services.dreamer.error_map),
    or None when no round holds two frames (the measured rewards are then unavailable)."""
    try:
        return error_map_from_frames(model, states, frames.poses, frames.round_ids, ranges,
                                     ActionScale(), max_transitions=max_transitions,
                                     times=frames.times)
    except ErrorMapError as e:
        log.warning("dreams get no measured error map: %s", e)
        return None


def _json(obj) -> str:
    import json

    return json.dumps(obj, sort_keys=True)
