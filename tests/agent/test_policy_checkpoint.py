"""Checkpoint round trip and bad files; choose_action exploration; observe() = dream space."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save

from services.agent.checkpoint import AgentCheckpointError, from_bytes, to_bytes
from services.agent.config import AgentConfig
from services.agent.observe import observe
from services.agent.policy import choose_action
from services.agent.qnet import QNetwork
from services.dreamer.rollout import generate
from shared.dreams import ObservationSpec, read_dreams, write_shards
from shared.pose import N_ACTIONS, PoseRanges
from shared.store import Store

RANGES = PoseRanges(0.0, 360.0, -30.0, 30.0, 1.0, 10.0, True)


def net_and_cfg():
    cfg = AgentConfig(hidden=(16, 8))
    torch.manual_seed(0)
    net = QNetwork(12, cfg.hidden)
    net.fit_normaliser(torch.randn(50, 12) * 3 + 1)
    return net, cfg


def test_checkpoint_round_trip(tmp_path):
    net, cfg = net_and_cfg()
    spec = ObservationSpec(pool_grid=1)
    data = to_bytes(net, cfg, spec, reward_scale=2.5, extra={"node": "n1"})
    path = tmp_path / "agent.safetensors"
    path.write_bytes(data)
    back, cfg2, meta = from_bytes(path.read_bytes())
    assert cfg2 == cfg and meta["observation_spec"] == spec and meta["reward_scale"] == 2.5
    assert meta["node"] == "n1"
    x = torch.randn(4, 12)
    torch.testing.assert_close(back(x), net(x))
    assert len(data) < 10e6


def test_a_checkpoint_from_before_view_weight_loads_with_its_old_behaviour():
    net, cfg = net_and_cfg()
    old = cfg.to_dict()
    del old["view_weight"]  # a checkpoint saved without the field
    tensors = {k: v.contiguous() for k, v in net.state_dict().items()}
    meta = {"format": "ptzjepa.agent", "format_version": "1", "config": json.dumps(old),
            "obs_dim": "12", "n_actions": str(N_ACTIONS),
            "observation_spec": json.dumps(ObservationSpec().to_dict()), "reward_scale": "1.0"}
    _, back, _ = from_bytes(save(tensors, metadata=meta))
    assert back.view_weight == 1.0 and back.replace(view_weight=cfg.view_weight) == cfg


def test_bad_checkpoints_fail_loudly():
    net, cfg = net_and_cfg()
    data = to_bytes(net, cfg)
    with pytest.raises(AgentCheckpointError, match="truncated"):
        from_bytes(data[:-10])
    with pytest.raises(AgentCheckpointError, match="only 3 bytes"):
        from_bytes(b"abc")
    with pytest.raises(AgentCheckpointError):
        from_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    tensors = {k: v.contiguous() for k, v in net.state_dict().items()}
    meta = {"format": "ptzjepa.agent", "format_version": "1", "config": cfg.to_json(),
            "obs_dim": "12", "n_actions": str(N_ACTIONS),
            "observation_spec": json.dumps(ObservationSpec().to_dict()), "reward_scale": "1.0"}
    with pytest.raises(AgentCheckpointError, match="not an agent file"):
        from_bytes(save(tensors, metadata={**meta, "format": "ptzjepa.world_model"}))
    with pytest.raises(AgentCheckpointError, match="version"):
        from_bytes(save(tensors, metadata={**meta, "format_version": "9"}))
    with pytest.raises(AgentCheckpointError, match="bad agent metadata"):
        from_bytes(save(tensors, metadata={**meta, "config": "{}"}))
    with pytest.raises(AgentCheckpointError, match="shape"):
        from_bytes(save(tensors, metadata={**meta, "obs_dim": "13"}))
    fewer = dict(tensors)
    fewer.pop("net.0.bias")
    with pytest.raises(AgentCheckpointError, match="missing"):
        from_bytes(save(fewer, metadata=meta))
    nan = dict(tensors)
    nan["net.0.bias"] = torch.full_like(tensors["net.0.bias"], float("nan"))
    with pytest.raises(AgentCheckpointError, match="NaN"):
        from_bytes(save(nan, metadata=meta))


class Table(QNetwork):
    def __init__(self, q):
        super().__init__(3, (4,))
        self.q = torch.tensor(q, dtype=torch.float32)

    def forward(self, obs):
        return self.q.expand(obs.shape[0], -1)


def test_choose_action_greedy_epsilon_and_softmax():
    q = [0.0] * N_ACTIONS
    q[5] = 1.0
    net = Table(q)
    obs = np.zeros(3, np.float32)
    a, qv = choose_action(net, obs)
    assert a == 5 and qv.shape == (N_ACTIONS,)
    rng = np.random.default_rng(0)
    picks = [choose_action(net, obs, epsilon=1.0, rng=rng)[0] for _ in range(2000)]
    assert len(set(picks)) == N_ACTIONS  # uniform exploration reaches every action
    picks = [choose_action(net, obs, epsilon=0.2, rng=rng)[0] for _ in range(2000)]
    share = np.mean(np.array(picks) == 5)
    assert 0.78 < share < 0.86  # 0.8 greedy + 0.2 / 21 random
    cold = [choose_action(net, obs, temperature=0.05, rng=rng)[0] for _ in range(300)]
    hot = [choose_action(net, obs, temperature=100.0, rng=rng)[0] for _ in range(2000)]
    assert np.mean(np.array(cold) == 5) > 0.99
    assert np.mean(np.array(hot) == 5) < 0.15 and len(set(hot)) > 15
    with pytest.raises(ValueError):
        choose_action(net, obs, epsilon=1.5)


def test_observe_on_real_frames_is_the_dream_space(tmp_path, tiny_wm):
    """observe(frames) equals the observation a dream records at its real start frame, also after
    the shard round trip, and has the dreams' size."""
    from services.camera.sim.world import SimWorld, SimWorldConfig
    from shared.pose import Pose

    world = SimWorld(SimWorldConfig(seed=0, pano_width=512, pano_height=256, ranges=RANGES))
    poses = [Pose(10.0, 0.0, 1.0), Pose(200.0, -10.0, 4.0), Pose(355.0, 20.0, 2.0)]
    frames = np.stack([world.render(p, 1.0, 48, 48) for p in poses])
    raw = np.array([p.as_tuple() for p in poses])
    spec = ObservationSpec(pool_grid=2)
    obs = observe(tiny_wm, frames, raw, RANGES, spec)
    one = observe(tiny_wm, frames[1], raw[1], RANGES, spec)
    torch.testing.assert_close(one[0], obs[1], atol=1e-5, rtol=1e-5)
    states = tiny_wm.encode_state(frames)
    d = generate(tiny_wm, states, raw, RANGES, 3, torch.Generator().manual_seed(0), spec=spec)
    assert obs.shape == (3, d.obs_dim) and obs.dtype == torch.float32
    torch.testing.assert_close(obs, d.observations[:, 0])
    store = Store(str(tmp_path))
    write_shards(store, "d", d)
    back = read_dreams(store, "d")
    torch.testing.assert_close(obs, back.observations[:, 0], atol=2e-2, rtol=1e-2)
    # the pose part is the normalised pose, in [-1, 1]
    assert obs[:, -4:].abs().max() <= 1.0 + 1e-6
    net = QNetwork(d.obs_dim, (8,))
    a, _q = choose_action(net, obs[0])
    assert 0 <= a < N_ACTIONS
