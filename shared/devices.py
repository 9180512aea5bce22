"""Where the models run: `settings.device` = auto (a CUDA GPU when one is visible), cpu or cuda."""

from __future__ import annotations

from shared.config import ConfigError, Settings


def torch_device(settings: Settings):
    import torch

    wanted = settings.device
    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if wanted == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' was asked for but no CUDA GPU is visible to this process")
    return torch.device(wanted)
