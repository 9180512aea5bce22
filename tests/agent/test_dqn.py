"""Double DQN: train_step, bandit learning, soft update, double-DQN targets, bounded train loop."""

from __future__ import annotations

import copy

import pytest
import torch

from services.agent.config import AgentConfig
from services.agent.dqn import make_agent, replay_from_dreams, soft_update, td_targets, train, train_step
from services.agent.qnet import QNetwork
from services.agent.replay import ReplayMemory
from shared.dreams import REWARDS, Dreams
from shared.pose import N_ACTIONS

OBS = 6


def bandit_memory(n=1024, good=7, seed=0, gamma_done=True) -> ReplayMemory:
    """One-step bandit: reward 1 only for action `good`; every transition ends (done = 1)."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, OBS, generator=g)
    action = torch.randint(N_ACTIONS, (n,), generator=g)
    reward = (action == good).float()
    mem = ReplayMemory(n, OBS)
    mem.add(obs, action, reward, torch.randn(n, OBS, generator=g),
            torch.ones(n) if gamma_done else None)
    return mem


def test_config_presets_and_validation():
    cpu, paper = AgentConfig.preset("cpu"), AgentConfig.preset("paper")
    assert cpu.gamma == 0.9 and cpu.grad_clip == 1.0 and cpu.double
    assert AgentConfig.from_dict(paper.to_dict()) == paper
    with pytest.raises(ValueError, match="reward"):
        AgentConfig(reward="other")
    # the measured default (docs/agent.md)
    assert cpu.reward == paper.reward == "measured_balanced" and cpu.view_weight == 3.0
    for kind in REWARDS:
        assert AgentConfig(reward=kind).reward == kind
    with pytest.raises(ValueError, match="unknown"):
        AgentConfig.from_dict({**cpu.to_dict(), "extra": 1})
    with pytest.raises(ValueError, match="missing"):
        AgentConfig.from_dict({k: v for k, v in cpu.to_dict().items() if k != "gamma"})
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="view_weight"):
            AgentConfig(view_weight=bad)
    assert AgentConfig.from_dict(cpu.replace(view_weight=2.5).to_dict()).view_weight == 2.5
    # well under 10 MB even at the paper preset (paper WM tokens are 192-dim: 5 * 192 + 4 inputs)
    net = QNetwork(5 * 192 + 4, paper.hidden)
    assert net.n_parameters() * 4 < 10e6


def test_train_step_reduces_loss_and_learns_a_bandit():
    cfg = AgentConfig(hidden=(32, 32), lr=3e-3, batch_size=128, gamma=0.0, reward_norm=False,
                      replay_capacity=4096, tau=0.05)
    state = make_agent(cfg, OBS)
    mem = bandit_memory()
    fixed = mem.sample(512, torch.Generator().manual_seed(9))
    first = train_step(copy.deepcopy(state), fixed)["loss"]
    res = train(state, mem, updates=300)
    assert res.stop_reason == "updates" and res.updates == 300
    after = train_step(copy.deepcopy(state), fixed)["loss"]
    assert after < first * 0.3
    with torch.no_grad():
        q = state.policy(torch.randn(100, OBS))
    assert (q.argmax(1) == 7).float().mean() > 0.95
    assert q[:, 7].mean() == pytest.approx(1.0, abs=0.15)


def test_soft_update_math():
    torch.manual_seed(0)
    a, b = QNetwork(OBS, (8,)), QNetwork(OBS, (8,))
    b.obs_mean.fill_(3.0)
    before = [p.clone() for p in a.parameters()]
    soft_update(a, b, 0.25)
    for pa, p0, pb in zip(a.parameters(), before, b.parameters(), strict=True):
        torch.testing.assert_close(pa, 0.75 * p0 + 0.25 * pb)
    assert torch.all(a.obs_mean == 3.0)  # buffers copied
    soft_update(a, b, 1.0)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb)


class Fixed(QNetwork):
    """A real QNetwork whose output is a fixed table (to pin down which net picks a')."""

    def __init__(self, table):
        super().__init__(OBS, (4,))
        self.table = table

    def forward(self, obs):
        return self.table.expand(obs.shape[0], -1)


def test_double_dqn_target_uses_the_policy_argmax():
    pol = torch.zeros(1, N_ACTIONS)
    pol[0, 3] = 5.0   # the policy net prefers action 3
    tgt = torch.zeros(1, N_ACTIONS)
    tgt[0, 3] = 1.0
    tgt[0, 9] = 10.0  # the target net would prefer 9
    reward, nxt = torch.tensor([0.5, 0.5]), torch.zeros(2, OBS)
    y = td_targets(Fixed(pol), Fixed(tgt), reward, nxt, torch.tensor([0.0, 1.0]), 0.9, double=True)
    torch.testing.assert_close(y, torch.tensor([0.5 + 0.9 * 1.0, 0.5]))
    y_plain = td_targets(Fixed(pol), Fixed(tgt), reward, nxt, torch.zeros(2), 0.9, double=False)
    torch.testing.assert_close(y_plain, torch.tensor([0.5 + 9.0, 0.5 + 9.0]))


def test_train_is_bounded_and_reports_progress():
    cfg = AgentConfig(hidden=(16,), batch_size=32, replay_capacity=2048)
    state = make_agent(cfg, OBS)
    mem = bandit_memory()
    seen = []
    calls = iter(range(1000))
    res = train(state, mem, updates=100, should_stop=lambda: next(calls) >= 40,
                progress=seen.append, progress_every=10)
    assert res.stop_reason == "stopped" and res.updates == 40 and len(res.losses) == 40
    assert [p["update"] for p in seen] == [10, 20, 30, 40]
    t = iter([0.0, 0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0])
    res = train(state, mem, updates=100, time_budget_s=1.5, clock=lambda: next(t),
                fit_normaliser=False)
    assert res.stop_reason == "time_budget" and res.updates == 3
    with pytest.raises(ValueError, match="empty"):
        train(state, ReplayMemory(64, OBS))


def test_replay_ring_buffer_wraps():
    mem = ReplayMemory(5, 2)
    for i in range(3):
        mem.add(torch.full((2, 2), float(i)), torch.tensor([i, i]), torch.tensor([1.0 * i, i]),
                torch.zeros(2, 2))
    assert len(mem) == 5 and mem.pos == 1
    assert mem.action.tolist() == [2, 0, 1, 1, 2]
    mem.add(torch.ones(7, 2), torch.arange(7), torch.zeros(7), torch.zeros(7, 2))  # only newest 5
    assert mem.action.tolist() == [3, 4, 5, 6, 2] or sorted(mem.action.tolist()) == [2, 3, 4, 5, 6]
    b = mem.sample(16)
    assert b["obs"].dtype == torch.float32 and b["obs"].shape == (16, 2)


def test_replay_from_dreams_selects_the_reward():
    c, steps, o = 3, 4, OBS
    d = Dreams(observations=torch.randn(c, steps + 1, o), poses=torch.zeros(c, steps + 1, 3),
               actions=torch.randint(N_ACTIONS, (c, steps)), surprise=torch.rand(c, steps),
               surprise_delta=torch.rand(c, steps) - 0.5, view_surprise=torch.rand(c, steps + 1),
               measured_move=torch.rand(c, steps), measured_view=torch.rand(c, steps + 1))
    for kind, want in (("surprise", d.surprise), ("delta", d.surprise_delta),
                       ("view", d.view_surprise[:, 1:]),
                       ("surprise_view", d.surprise + d.view_surprise[:, 1:]),
                       ("measured", d.measured_move + d.measured_view[:, 1:]),
                       ("measured_view", d.measured_view[:, 1:])):
        mem = replay_from_dreams(d, AgentConfig(reward=kind, batch_size=4, replay_capacity=64))
        assert len(mem) == c * steps
        torch.testing.assert_close(mem.reward[:12], want.reshape(-1))
        assert torch.all(mem.done[:12] == 0)  # dream ends are time limits: bootstrap
    # balanced: the view term, standardised, weighs view_weight times the standardised move term
    move, view = d.measured_move, d.measured_view[:, 1:]
    for weight in (1.0, 2.5):
        cfg = AgentConfig(reward="measured_balanced", view_weight=weight, batch_size=4,
                          replay_capacity=64)
        want = (move - move.mean()) / move.std() + weight * (view - view.mean()) / view.std()
        torch.testing.assert_close(replay_from_dreams(d, cfg).reward[:12], want.reshape(-1))
    # the weight changes nothing else
    view_only = AgentConfig(reward="measured_view", view_weight=5.0, batch_size=4, replay_capacity=64)
    torch.testing.assert_close(replay_from_dreams(d, view_only).reward[:12], view.reshape(-1))
