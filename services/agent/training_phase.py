"""One agent-training phase: double DQN on the newest dreams, continuing the node's last agent.

An agent is trained on the dreams of one world-model version, whose states define its
observation space; the record of the trained agent names that version, and navigation encodes
camera frames with exactly it. When the dreams' observation size differs from the last agent's
(a different world-model config), training starts from a fresh network.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from services.agent.checkpoint import from_bytes, to_bytes
from services.agent.dqn import make_agent, replay_from_dreams, train
from services.agent.setup import agent_config, agent_paths
from shared.config import Settings
from shared.dreams import read_dreams
from shared.keys import Keys
from shared.store import AlreadyExists, Store

log = logging.getLogger(__name__)


class NoDreams(LookupError):
    pass


@dataclass
class AgentHooks:
    progress: Callable[[int, int, dict], None] = lambda done, total, info: None
    stop_requested: Callable[[], bool] = lambda: False


def latest_agent(client: redis.Redis, keys: Keys, node: str) -> dict | None:
    raw = client.get(keys.agent_latest(node))
    return json.loads(raw) if raw else None


def train_on_dreams(settings: Settings, store: Store, client: redis.Redis, dreams_info: dict | None,
                    hooks: AgentHooks = AgentHooks()) -> dict:
    started = time.time()
    keys = Keys(settings.redis_prefix)
    if dreams_info is None:
        raw = client.get(keys.dreams_latest(settings.node))
        if not raw:
            raise NoDreams("no dreams for this node yet: run the dreamer phase first")
        dreams_info = json.loads(raw)
    dreams = read_dreams(store, dreams_info["folder"])
    cfg = agent_config(settings)
    previous = latest_agent(client, keys, settings.node)
    policy = None
    if previous is not None:
        net, _cfg, _meta = from_bytes(store.read_verified(previous["path"], previous["sha256"]))
        if net.obs_dim == dreams.obs_dim and tuple(net.hidden) == tuple(cfg.hidden):
            policy = net.train()
    state = make_agent(cfg, dreams.obs_dim, policy=policy)
    memory = replay_from_dreams(dreams, cfg)
    total = cfg.updates

    def on_progress(event: dict) -> None:
        hooks.progress(event["update"], event["total"], {"loss": round(float(event["loss"]), 6)})

    # `cfg.updates` bounds the job; `cfg.time_budget_s` is only a safety cap, reported if it fires.
    result = train(state, memory, should_stop=hooks.stop_requested, progress=on_progress)
    if result.stop_reason == "time_budget":
        log.warning("agent training hit its time cap of %s s after %d of %d updates",
                    cfg.time_budget_s, result.updates, total)
    data = to_bytes(state.policy, cfg, dreams.spec, state.reward_scale,
                    extra={"wm_slot": dreams_info["slot"], "wm_version": dreams_info["version"],
                           "node": settings.node})
    sha = hashlib.sha256(data).hexdigest()
    weights, meta_path = agent_paths(settings.node, sha)
    try:
        store.write_bytes(weights, data)
    except AlreadyExists:
        pass  # content-addressed: same bytes
    record = {"path": weights, "sha256": sha, "node": settings.node, "wm_slot": dreams_info["slot"],
              "wm_version": dreams_info["version"], "dreams": dreams_info["folder"],
              "parent": previous["sha256"] if previous else None, "updates": result.updates,
              "stop_reason": result.stop_reason, "trained_at": time.time(),
              "reward": cfg.reward, "config": cfg.to_dict(),
              "final_loss": result.losses[-1] if result.losses else None,
              "updates_per_s": round(result.updates / max(result.seconds, 1e-9), 2),
              "transitions_per_s": round(result.transitions_per_s, 2)}
    try:
        store.write_json(meta_path, record)
    except AlreadyExists:
        pass
    client.set(keys.agent_latest(settings.node), json.dumps(record, sort_keys=True))
    return {**{k: record[k] for k in ("path", "sha256", "wm_slot", "wm_version", "updates",
                                      "stop_reason", "final_loss", "updates_per_s")},
            "continued": policy is not None, "transitions": len(memory),
            "time_capped": result.stop_reason == "time_budget",
            "seconds": round(time.time() - started, 3), "total_updates": total}
