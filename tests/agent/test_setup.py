"""From settings to the agent's config: the preset, overrides, and a reward the dreams can carry."""

from __future__ import annotations

import pytest

from services.agent.setup import agent_config
from shared.config import ConfigError, load_settings


def test_default_reward_is_the_presets_and_overrides_apply():
    assert agent_config(load_settings(environ={})).reward == "measured_balanced"
    s = load_settings(environ={"PTZJEPA_AGENT__CONFIG__REWARD": "surprise",
                               "PTZJEPA_AGENT__CONFIG__UPDATES": "7"})
    cfg = agent_config(s)
    assert cfg.reward == "surprise" and cfg.updates == 7


def test_the_job_bounds_live_in_the_agent_config():
    # the preset's budget, then the file/environment/override layers of agent.config
    assert agent_config(load_settings(environ={})).time_budget_s == 120.0
    paper = agent_config(load_settings(environ={}, preset="paper"))
    assert (paper.updates, paper.time_budget_s) == (3600, 300.0)
    s = load_settings(environ={"PTZJEPA_AGENT__CONFIG__TIME_BUDGET_S": "9"},
                      defaults={"agent": {"config": {"time_budget_s": 8.0, "updates": 11}}})
    cfg = agent_config(s)
    assert cfg.time_budget_s == 9.0 and cfg.updates == 11
    with pytest.raises(ConfigError, match="reward"):
        agent_config(load_settings(environ={}, agent={"config": {"reward": "other"}}))


@pytest.mark.parametrize("reward", [None, "measured", "measured_view", "measured_balanced"])
def test_a_measured_reward_needs_the_error_map(reward):
    env = {"PTZJEPA_DREAMER__ERROR_MAP_TRANSITIONS": "0"}
    if reward:
        env["PTZJEPA_AGENT__CONFIG__REWARD"] = reward
    with pytest.raises(ConfigError, match="error_map_transitions > 0"):
        agent_config(load_settings(environ=env))
    env["PTZJEPA_AGENT__CONFIG__REWARD"] = "surprise"  # a head-based reward needs no map
    assert agent_config(load_settings(environ=env)).reward == "surprise"


def test_the_view_weight_comes_from_the_agent_config_overrides():
    s = load_settings(environ={"PTZJEPA_AGENT__CONFIG": '{"reward": "measured_balanced", '
                                                       '"view_weight": 2.5}'})
    cfg = agent_config(s)
    assert cfg.reward == "measured_balanced" and cfg.view_weight == 2.5
    with pytest.raises(ConfigError, match="view_weight"):
        agent_config(load_settings(environ={"PTZJEPA_AGENT__CONFIG": '{"view_weight": 0}'}))
