"""From settings to the model and training configs of a world-model job (preset + overrides)."""

from __future__ import annotations

from services.worldmodel.config import TrainConfig
from shared.config import ConfigError, Settings, deep_merge
from shared.models.config import ConfigError as ModelConfigError
from shared.models.config import WorldModelConfig


def model_config(settings: Settings) -> WorldModelConfig:
    base = WorldModelConfig.preset(settings.preset).to_dict()
    try:
        return WorldModelConfig.from_dict(deep_merge(base, settings.worldmodel.model))
    except (ModelConfigError, TypeError, ValueError) as exc:
        raise ConfigError(f"worldmodel.model: {exc}") from None


def train_config(settings: Settings) -> TrainConfig:
    try:
        return TrainConfig.preset(settings.preset).replace(**settings.worldmodel.train)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"worldmodel.train: {exc}") from None
