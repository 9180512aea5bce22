"""The Q-network: an MLP from the observation to one Q-value per action.

Observations are standardised inside the network with per-feature mean/std buffers fitted on the
training data (`fit_normaliser`), so a checkpoint carries everything run time needs.
"""

from __future__ import annotations

import torch
from torch import nn

from shared.pose import N_ACTIONS


class QNetwork(nn.Module):
    obs_mean: torch.Tensor
    obs_std: torch.Tensor

    def __init__(self, obs_dim: int, hidden: tuple[int, ...] = (256, 256), n_actions: int = N_ACTIONS):
        super().__init__()
        if obs_dim < 1:
            raise ValueError(f"obs_dim must be positive, got {obs_dim}")
        self.obs_dim, self.n_actions, self.hidden = int(obs_dim), int(n_actions), tuple(hidden)
        layers: list[nn.Module] = []
        width = obs_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LayerNorm(h), nn.GELU()]
            width = h
        layers.append(nn.Linear(width, n_actions))
        self.net = nn.Sequential(*layers)
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))

    @torch.no_grad()
    def fit_normaliser(self, obs: torch.Tensor, min_std: float = 1e-3) -> None:
        """Set the input standardisation from a sample of observations (N, obs_dim)."""
        obs = obs.float()
        self.obs_mean.copy_(obs.mean(0))
        self.obs_std.copy_(obs.std(0, unbiased=False).clamp(min=min_std))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if obs.shape[-1] != self.obs_dim:
            raise ValueError(f"observation has {obs.shape[-1]} features, the network expects "
                             f"{self.obs_dim}")
        return self.net((obs.float() - self.obs_mean) / self.obs_std)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
