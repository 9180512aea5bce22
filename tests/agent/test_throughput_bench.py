"""The dream/agent throughput benchmark runs on the agent's default reward (a measured one, so
its dreams must carry the error map, as the system's do) and reports the figures its targets are read from."""

from __future__ import annotations

from types import SimpleNamespace

from bench.agent_throughput import measure
from services.agent.config import AgentConfig
from shared.dreams import MEASURED_REWARDS


def test_measure_dreams_with_the_error_map_and_trains_on_the_default_reward() -> None:
    args = SimpleNamespace(seconds=0.2, dream_batch=16, dream_length=10, threads=1,
                           agent_threads=1)
    result = measure("cpu", args)
    assert AgentConfig().reward in MEASURED_REWARDS  # why the dreams need the map
    assert result["agent_reward"] == AgentConfig.preset("cpu").reward
    assert result["dream_sps"] > 0 and result["agent_ups"] > 0 and result["agent_tps"] > 0
    assert result["vs_original"]["dream_sps_x"] > 0
