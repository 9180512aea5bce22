"""The agent job's bounds: `updates` is its budget; the time cap is a safety limit, reported."""

from __future__ import annotations

import logging

import torch

from services.agent.training_phase import train_on_dreams
from shared.dreams import Dreams, write_shards
from shared.move_times import MoveTimes
from shared.pose import N_ACTIONS
from shared.redis import connect
from shared.store import Store
from tests.support.settings import make_settings


def _dreams_in_store(store: Store) -> dict:
    c, steps, obs = 6, 4, 8
    gen = torch.Generator().manual_seed(0)
    actions = torch.randint(N_ACTIONS, (c, steps), generator=gen)
    times = MoveTimes(seconds=(1.0,) * N_ACTIONS, jump_s=2.0)
    dreams = Dreams(observations=torch.randn(c, steps + 1, obs, generator=gen),
                    poses=torch.zeros(c, steps + 1, 3), actions=actions,
                    surprise=torch.rand(c, steps, generator=gen),
                    surprise_delta=torch.rand(c, steps, generator=gen) - 0.5,
                    view_surprise=torch.rand(c, steps + 1, generator=gen),
                    dt=torch.from_numpy(times.of(actions)), move_times=times)
    write_shards(store, "dreams/node0/test", dreams, slot="wm_00", version="v0", node="node0")
    return {"folder": "dreams/node0/test", "slot": "wm_00", "version": "v0"}


def _train(tmp_path, redis_url, **config):
    settings = make_settings(tmp_path, redis_url, agent={"config": {
        "hidden": [16], "batch_size": 8, "replay_capacity": 64, "reward": "surprise", **config}})
    store = Store(settings.resolved_store_url())
    return train_on_dreams(settings, store, connect(redis_url), _dreams_in_store(store))


def test_the_updates_are_the_budget(tmp_path, redis_url):
    result = _train(tmp_path, redis_url, updates=7, time_budget_s=600.0)
    assert result["stop_reason"] == "updates" and result["updates"] == 7
    assert result["time_capped"] is False and result["total_updates"] == 7


def test_the_time_cap_fires_and_is_reported(tmp_path, redis_url, caplog):
    with caplog.at_level(logging.WARNING, logger="services.agent.training_phase"):
        result = _train(tmp_path, redis_url, updates=10_000_000, time_budget_s=0.2)
    assert result["stop_reason"] == "time_budget" and result["time_capped"] is True
    assert 0 < result["updates"] < 10_000_000
    assert "time cap" in caplog.text
