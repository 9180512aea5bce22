"""World-model networks shared by the world-model trainer, the dreamer and the agent.

Importing this package builds nothing; call `build_world_model` or `load_world_model`.
"""

from shared.models.config import ConfigError, EncoderConfig, PredictorConfig, SurpriseConfig, WorldModelConfig
from shared.models.world_model import WorldModel, build_world_model, normalise_poses

__all__ = [
                                  "ConfigError",
                                  "EncoderConfig",
                                  "PredictorConfig",
                                  "SurpriseConfig",
                                  "WorldModel",
                                  "WorldModelConfig",
                                  "build_world_model",
                                  "normalise_poses",
]
