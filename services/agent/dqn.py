"""Double DQN on dream transitions.

A policy network and a target network (a Polyak-averaged copy, updated softly after every step);
targets y = r + gamma * Q_target(s', argmax_a Q_policy(s', a)) (double DQN: the policy net picks
the action, the target net rates it, which removes max-operator over-estimation); Huber loss;
gradient norm clipped to 1.0; AdamW.

Dreams are cut at a fixed length, which is a time limit, not an end of the world: every dream
transition bootstraps from its next state (done = 0). `done` stays in the replay memory for
transitions that really end (none do today).

`train_step` is a pure function of (state, batch) that tests call directly; `train` is the bounded
loop (updates, time budget, stop callback) that jobs call, reporting progress through a callback.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from services.agent.config import AgentConfig
from services.agent.qnet import QNetwork
from services.agent.replay import ReplayMemory
from shared.dreams import Dreams

Progress = Callable[[dict], None]
STOP_REASONS = ("updates", "time_budget", "stopped")


class AgentDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class AgentState:
    cfg: AgentConfig
    policy: QNetwork
    target: QNetwork
    optimizer: torch.optim.Optimizer
    reward_scale: float = 1.0
    step: int = 0
    generator: torch.Generator = field(default_factory=torch.Generator)


def make_agent(cfg: AgentConfig, obs_dim: int, policy: QNetwork | None = None) -> AgentState:
    """A fresh agent (or one continuing from `policy`, e.g. loaded from a checkpoint)."""
    torch.manual_seed(cfg.seed)
    if policy is None:
        policy = QNetwork(obs_dim, cfg.hidden)
    elif policy.obs_dim != obs_dim:
        raise ValueError(f"the network expects {policy.obs_dim} features, the dreams have {obs_dim}")
    target = copy.deepcopy(policy)
    target.requires_grad_(False)
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    return AgentState(cfg=cfg, policy=policy, target=target, optimizer=opt, generator=gen)


@torch.no_grad()
def soft_update(target: torch.nn.Module, source: torch.nn.Module, tau: float) -> None:
    """target <- (1 - tau) * target + tau * source (parameters); buffers are copied."""
    tp: list[torch.Tensor] = list(target.parameters())
    sp = [p.detach() for p in source.parameters()]
    torch._foreach_mul_(tp, 1.0 - tau)
    torch._foreach_add_(tp, sp, alpha=tau)
    for tb, sb in zip(target.buffers(), source.buffers(), strict=True):  # target: a copy of source
        tb.copy_(sb)


@torch.no_grad()
def td_targets(policy: QNetwork, target: QNetwork, reward: torch.Tensor, next_obs: torch.Tensor,
               done: torch.Tensor, gamma: float, double: bool = True) -> torch.Tensor:
    """r + gamma * (1 - done) * Q_target(s', a*), a* = argmax Q_policy(s') (double) or of Q_target."""
    q_next_target = target(next_obs)
    if double:
        a_star = policy(next_obs).argmax(dim=1, keepdim=True)
    else:
        a_star = q_next_target.argmax(dim=1, keepdim=True)
    return reward + gamma * (1.0 - done) * q_next_target.gather(1, a_star).squeeze(1)


def train_step(state: AgentState, batch: dict[str, torch.Tensor]) -> dict:
    """One update on `batch` (obs, action, reward, next_obs[, done]); mutates `state`."""
    cfg = state.cfg
    policy = state.policy
    policy.train()
    reward = batch["reward"].float() * state.reward_scale
    done = batch.get("done")
    done = torch.zeros_like(reward) if done is None else done.float()
    y = td_targets(policy, state.target, reward, batch["next_obs"], done, cfg.gamma, cfg.double)
    q = policy(batch["obs"]).gather(1, batch["action"].long()[:, None]).squeeze(1)
    loss = F.huber_loss(q, y, delta=cfg.huber_delta)
    if not torch.isfinite(loss):
        raise AgentDiverged(f"agent loss is {loss.item()} at update {state.step}")
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip)
    state.optimizer.step()
    soft_update(state.target, policy, cfg.tau)
    state.step += 1
    return {"loss": float(loss.detach()), "q_mean": float(q.detach().mean()),
            "target_mean": float(y.mean()), "grad_norm": float(grad_norm)}


def replay_from_dreams(dreams: Dreams | list[Dreams], cfg: AgentConfig,
                       memory: ReplayMemory | None = None) -> ReplayMemory:
    """Every dream transition into a replay memory (a new one unless `memory` is given)."""
    parts = dreams if isinstance(dreams, list) else [dreams]
    if memory is None:
        memory = ReplayMemory(cfg.replay_capacity, parts[0].obs_dim)
    for d in parts:
        tr = d.transitions(cfg.reward, cfg.view_weight)
        memory.add(tr["obs"], tr["action"], tr["reward"], tr["next_obs"])
    return memory


@dataclass
class TrainResult:
    stop_reason: str
    losses: list[float]
    updates: int
    seconds: float
    transitions: int

    @property
    def transitions_per_s(self) -> float:
        return self.transitions / self.seconds if self.seconds > 0 else 0.0


def train(state: AgentState, memory: ReplayMemory, *, updates: int | None = None,
          time_budget_s: float | None = None, should_stop: Callable[[], bool] | None = None,
          progress: Progress | None = None, progress_every: int = 50, fit_normaliser: bool = True,
          clock: Callable[[], float] = time.monotonic) -> TrainResult:
    """Up to `updates` DQN updates on batches from `memory`, ending early on the time budget or a
    stop request. Returns the per-update losses and why it stopped.

    The bounds' home is the config (`cfg.updates`, `cfg.time_budget_s`, set from
    `agent.config`); the `updates` and `time_budget_s` arguments are explicit overrides for
    callers that measure, and win when given.

    With `fit_normaliser` (the first training of a network) the observation standardisation and
    the reward scale are fitted on the memory first.
    """
    cfg = state.cfg
    n = cfg.updates if updates is None else updates
    budget = cfg.time_budget_s if time_budget_s is None else time_budget_s
    if len(memory) == 0:
        raise ValueError("the replay memory is empty: no dreams to train on")
    if fit_normaliser:
        state.policy.fit_normaliser(memory.all_obs())
        state.target.load_state_dict(state.policy.state_dict())
        state.reward_scale = 1.0 / max(memory.reward_std(), 1e-8) if cfg.reward_norm else 1.0
    losses: list[float] = []
    start = clock()
    reason = "updates"
    for i in range(n):
        if should_stop is not None and should_stop():
            reason = "stopped"
            break
        if budget is not None and clock() - start >= budget:
            reason = "time_budget"
            break
        metrics = train_step(state, memory.sample(cfg.batch_size, state.generator))
        losses.append(metrics["loss"])
        if progress is not None and ((i + 1) % progress_every == 0 or i + 1 == n):
            progress({"kind": "update", "update": i + 1, "total": n, "elapsed_s": clock() - start,
                      **metrics})
    state.policy.eval()
    return TrainResult(stop_reason=reason, losses=losses, updates=len(losses),
                       seconds=clock() - start, transitions=len(losses) * cfg.batch_size)
