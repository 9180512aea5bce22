"""From settings to the agent's config (preset + overrides), and where agents live in the store."""

from __future__ import annotations

from typing import Any

from services.agent.config import AgentConfig
from shared.config import ConfigError, Settings
from shared.dreams import MEASURED_REWARDS, PROGRESS_REWARDS


def agent_config(settings: Settings) -> AgentConfig:
    changes: dict[str, Any] = dict(settings.agent.config)
    if "hidden" in changes:
        changes["hidden"] = tuple(changes["hidden"])
    try:
        cfg = AgentConfig.preset(settings.preset).replace(**changes)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"agent.config: {exc}") from None
    if cfg.reward in (*MEASURED_REWARDS, *PROGRESS_REWARDS) and \
            not settings.dreamer.error_map_transitions:
        raise ConfigError(f"agent reward {cfg.reward!r} is measured on the node's real frames "
                          f"(error or its progress), which dreams carry only when "
                          f"dreamer.error_map_transitions > 0 (set it, or choose another "
                          f"agent.config.reward)")
    return cfg


def agent_paths(node: str, sha: str) -> tuple[str, str]:
    """(weights, metadata) store paths of an agent version, named by the weights' sha256."""
    return f"agents/{node}/{sha}.safetensors", f"agents/{node}/{sha}.json"
