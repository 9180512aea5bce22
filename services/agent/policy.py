"""The run-time policy: greedy on the Q-values with configurable exploration.

- epsilon-greedy: with probability epsilon a uniformly random action, else the argmax;
- softmax: sample from softmax(Q / temperature) (the original's choice; its near-uniform softmax in
  the field came from unscaled Q-values, so here the temperature is relative to the spread of the
  Q-values: Q is standardised per observation before dividing by the temperature).
Both zero (the default): greedy.
"""

from __future__ import annotations

import numpy as np
import torch

from services.agent.qnet import QNetwork


@torch.no_grad()
def choose_action(q_net: QNetwork, observation, epsilon: float = 0.0,
                  temperature: float | None = None,
                  rng: np.random.Generator | None = None) -> tuple[int, np.ndarray]:
    """(action index, Q-values (n_actions,)) for one observation (obs_dim,) or (1, obs_dim)."""
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    if temperature is not None and temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    rng = rng if rng is not None else np.random.default_rng()
    obs = torch.as_tensor(np.asarray(observation, dtype=np.float32)
                          if not isinstance(observation, torch.Tensor) else observation).float()
    obs = obs.reshape(1, -1)
    q_net.eval()
    q = q_net(obs)[0].cpu().numpy().astype(np.float64)
    if epsilon > 0 and rng.random() < epsilon:
        return int(rng.integers(len(q))), q
    if temperature:
        z = (q - q.mean()) / (q.std() + 1e-8) / temperature
        p = np.exp(z - z.max())
        p /= p.sum()
        return int(rng.choice(len(q), p=p)), q
    return int(np.argmax(q)), q
