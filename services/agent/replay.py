"""Replay memory: a ring buffer of transitions held in preallocated tensors.

Observations are kept in float16 (as in dream shards) and turned back to float32 when sampled,
which halves the memory of the largest part; actions int64, rewards float32.
"""

from __future__ import annotations

import torch


class ReplayMemory:
    def __init__(self, capacity: int, obs_dim: int, obs_dtype: torch.dtype = torch.float16):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity, self.obs_dim = int(capacity), int(obs_dim)
        self.obs = torch.zeros(capacity, obs_dim, dtype=obs_dtype)
        self.next_obs = torch.zeros(capacity, obs_dim, dtype=obs_dtype)
        self.action = torch.zeros(capacity, dtype=torch.int64)
        self.reward = torch.zeros(capacity, dtype=torch.float32)
        self.done = torch.zeros(capacity, dtype=torch.float32)
        self.pos = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
            next_obs: torch.Tensor, done: torch.Tensor | None = None) -> None:
        """Append a batch of transitions (oldest overwritten once full)."""
        n = obs.shape[0]
        if obs.shape != (n, self.obs_dim) or next_obs.shape != (n, self.obs_dim):
            raise ValueError(f"observations must be ({n}, {self.obs_dim})")
        if action.shape != (n,) or reward.shape != (n,):
            raise ValueError("action and reward must be (n,)")
        if done is None:
            done = torch.zeros(n)
        if n > self.capacity:  # only the newest fit
            obs, action, reward, next_obs, done = (t[-self.capacity:] for t in
                                                   (obs, action, reward, next_obs, done))
            n = self.capacity
        idx = (self.pos + torch.arange(n)) % self.capacity
        self.obs[idx] = obs.to(self.obs.dtype)
        self.next_obs[idx] = next_obs.to(self.obs.dtype)
        self.action[idx] = action.long()
        self.reward[idx] = reward.float()
        self.done[idx] = done.float()
        self.pos = int((self.pos + n) % self.capacity)
        self.size = min(self.capacity, self.size + n)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        if self.size == 0:
            raise ValueError("the replay memory is empty")
        idx = torch.randint(self.size, (batch_size,), generator=generator)
        return {"obs": self.obs[idx].float(), "action": self.action[idx],
                "reward": self.reward[idx], "next_obs": self.next_obs[idx].float(),
                "done": self.done[idx]}

    def all_obs(self) -> torch.Tensor:
        return self.obs[:self.size].float()

    def reward_std(self) -> float:
        return float(self.reward[:self.size].std(unbiased=False)) if self.size > 1 else 1.0
