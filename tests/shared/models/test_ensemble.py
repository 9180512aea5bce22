"""The bootstrap ensemble of predictor heads: batched disagreement, its absence, its files, and the
refusal of files with the removed `disagreement` light heads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from shared.models import ConfigError, WorldModelConfig, build_world_model
from shared.models.checkpoint import CheckpointError, model_from_bytes, read_header, share_bytes, to_bytes
from shared.models.config import EnsembleConfig
from shared.models.surprise import transition_keys
from tests.support.tiny_models import one_thread, tiny_config  # noqa: F401  (an autouse fixture)

POSES = ([[0, 0, 1], [90, 10, 2], [200, -5, 3]], [[10, 0, 1], [90, 10, 4], [180, 0, 3]])


def _state(model, n=3):
    frames = np.random.default_rng(0).integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)
    return model.encode_state(frames)


def test_disagreement_is_per_cell_batched_and_positive():
    torch.manual_seed(0)
    m = build_world_model(tiny_config(ensemble=3)).eval()
    assert m.ensemble is not None and m.ensemble.heads == 3
    state = _state(m)
    dis = m.ensemble_disagreement(state, *POSES, dt=[0.5, 1.0, 2.0])
    assert dis.shape == (3, 16) and (dis > 0).all() and not dis.requires_grad
    # One transition alone gets what it got in the batch.
    one = m.ensemble_disagreement(state[1:2], [POSES[0][1]], [POSES[1][1]], dt=1.0)
    assert torch.allclose(one[0], dis[1], rtol=1e-4, atol=1e-9)
    # The heads' predictions are residuals on the main prediction's base (without the warp: the
    # source token of the same cell); at initialisation (small output weights) they sit near it.
    s = state.float()
    pf, pt = torch.randn(3, 1, 4), torch.randn(3, 1, 4)
    with torch.no_grad():
        pred, trunk = m.predictor(s, pf, pt, torch.ones(3, 1))
        ens = m.ensemble_predictions(trunk, pred, full=True)
    assert ens.shape == (3, 3, 1, 16, 32)
    base = m.predictor.residual_base(trunk, pred, full=True)
    assert torch.allclose(base, s[:, None], atol=1e-5)
    assert (ens - base).abs().mean() < 0.2 * base.abs().mean()


def test_no_heads_is_a_clear_error_and_costs_nothing():
    torch.manual_seed(0)
    m = build_world_model(tiny_config()).eval()
    assert m.ensemble is None
    assert not any(k.startswith("ensemble.") for k in m.state_dict())
    with pytest.raises(RuntimeError, match="no bootstrap ensemble"):
        m.ensemble_disagreement(_state(m), *POSES, dt=1.0)
    with pytest.raises(ConfigError, match="0 \\(off\\) or >= 2"):
        EnsembleConfig(heads=1).validate()
    with pytest.raises(ConfigError, match="positive"):
        EnsembleConfig(heads=2, sample_rate=0.0).validate()


def test_the_ensemble_leaves_the_rest_of_the_model_as_it_was():
    """Built last: the same seed gives the same world model with the heads on or off, and the
    same predictions and surprise."""
    torch.manual_seed(0)
    off = build_world_model(tiny_config()).eval()
    torch.manual_seed(0)
    on = build_world_model(tiny_config(ensemble=4)).eval()
    on_main = {k: v for k, v in on.state_dict().items() if not k.startswith("ensemble.")}
    assert on_main.keys() == off.state_dict().keys()
    assert all(torch.equal(v, off.state_dict()[k]) for k, v in on_main.items())
    state = _state(off)
    a, b = off.predict(state, *POSES, dt=1.0), on.predict(state, *POSES, dt=1.0)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_bootstrap_weights_are_fixed_per_transition_and_differ_per_head():
    torch.manual_seed(0)
    ens = build_world_model(tiny_config(ensemble=4)).ensemble
    assert ens is not None
    times = torch.tensor([1.7e9 + 0.25 * i for i in range(6)], dtype=torch.float64)
    source = torch.tensor([[0, 0], [1, 1], [2, 3], [4, 5], [5, 4], [3, 2]])
    target = torch.tensor([[1, 2], [0, 2], [3, 2], [5, 4], [4, 5], [2, 3]])
    keys = transition_keys(times, source, target)
    w = ens.bootstrap_weights(keys, seed=7)
    assert w.shape == (4, 6, 2)
    assert torch.equal(w, ens.bootstrap_weights(keys, seed=7))
    assert not torch.equal(w, ens.bootstrap_weights(keys, seed=8))
    assert all(not torch.equal(w[i], w[j]) for i in range(4) for j in range(i + 1, 4))
    # the same two frames drawn into another batch, at other places: the same weight per head
    perm = torch.tensor([5, 3, 0, 4, 1, 2])
    moved = transition_keys(times[perm], torch.argsort(perm)[source], torch.argsort(perm)[target])
    assert torch.equal(moved, keys)
    # the same pair twice in a batch shares its weight; its reverse is another transition
    assert keys[2, 0] == keys[5, 1] and keys[2, 0] != keys[5, 0]
    # Poisson(1): whole non-negative counts around one (the classic n-out-of-n resample).
    many = torch.arange(20_000, dtype=torch.int64)
    big = ens.bootstrap_weights(many, seed=0)
    assert torch.equal(big, big.round()) and big.min() >= 0
    assert abs(float(big.mean()) - 1.0) < 0.02 and abs(float((big == 0).float().mean()) - np.exp(-1)) < 0.02


def test_checkpoint_round_trip_with_heads():
    torch.manual_seed(0)
    m = build_world_model(tiny_config(ensemble=3)).eval()
    with torch.no_grad():
        assert m.ensemble is not None
        m.ensemble.w2.normal_(0.0, 0.1)  # heads that disagree visibly
    loaded = model_from_bytes(share_bytes(m))
    assert loaded.cfg == m.cfg and loaded.cfg.ensemble.heads == 3
    state = _state(m)
    assert torch.equal(m.ensemble_disagreement(state, *POSES, dt=1.0),
                       loaded.ensemble_disagreement(state, *POSES, dt=1.0))
    # The ensemble's tensors are checked like the others'.
    from safetensors.torch import load
    data = share_bytes(m)
    tensors = load(data)
    del tensors["ensemble.w1"]
    meta = dict(read_header(data)["__metadata__"])
    with pytest.raises(CheckpointError, match=r"missing.*ensemble\.w1"):
        model_from_bytes(to_bytes(tensors, meta))


def _config_without_ensemble(data: bytes, **surprise) -> str:
    """The embedded config as a file written before the bootstrap ensemble stores it."""
    cfg = json.loads(read_header(data)["__metadata__"]["config"])
    del cfg["ensemble"]
    cfg["surprise"].update(surprise)
    return json.dumps(cfg)


def _rewrite_config(data: bytes, config: str) -> bytes:
    from safetensors.torch import load
    meta = dict(read_header(data)["__metadata__"])
    meta["config"] = config
    return to_bytes(load(data), meta)


def test_files_from_before_the_ensemble():
    """No `ensemble` field and `surprise.ensemble_size` 0: read as heads 0, the same model. The
    removed light heads (`ensemble_size` > 0, or the `disagreement` target) are refused, naming
    the field and saying to retrain."""
    torch.manual_seed(0)
    m = build_world_model(tiny_config()).eval()
    data = share_bytes(m)
    old = model_from_bytes(_rewrite_config(data, _config_without_ensemble(data, ensemble_size=0)))
    assert old.cfg == m.cfg.replace(ensemble=EnsembleConfig()) and old.ensemble is None
    state = _state(m)
    assert torch.equal(old.predict(state, *POSES, dt=1.0)[0], m.predict(state, *POSES, dt=1.0)[0])
    with pytest.raises(CheckpointError, match=r"surprise\.ensemble_size is 2.*retrain"):
        model_from_bytes(_rewrite_config(data, _config_without_ensemble(data, ensemble_size=2)))
    bad = _config_without_ensemble(data, ensemble_size=2, targets=["pred_error", "disagreement"])
    with pytest.raises(CheckpointError, match=r"surprise\.targets names 'disagreement'.*retrain"):
        model_from_bytes(_rewrite_config(data, bad))
    # A config of this version names its ensemble: a missing or unknown field there still fails.
    d = WorldModelConfig.preset("cpu").to_dict()
    d["ensemble"]["width"] = 3
    with pytest.raises(ConfigError, match="unknown"):
        WorldModelConfig.from_dict(d)
