"""The bootstrap ensemble in a training step: its own loss and generator, never the world model's."""

from __future__ import annotations

import torch

from services.worldmodel.data import WindowSampler
from services.worldmodel.losses import ensemble_loss, one_step_loss
from services.worldmodel.training import make_train_state, train_step
from shared.models import build_world_model
from tests.support.tiny_models import one_thread  # noqa: F401  (an autouse fixture)
from tests.worldmodel.test_training import TINY_TRAIN, synthetic, tiny_cfg


def _train(heads: int, steps: int = 3) -> tuple:
    torch.manual_seed(0)
    model = build_world_model(tiny_cfg(ensemble=heads))
    sampler = WindowSampler(synthetic(), 16, TINY_TRAIN.window_len, TINY_TRAIN.windows_per_batch)
    state = make_train_state(model, TINY_TRAIN, schedule_steps=10)
    metrics = [train_step(state, sampler.sample(state.generator), TINY_TRAIN) for _ in range(steps)]
    return model, metrics


def test_the_ensemble_never_moves_the_world_model():
    """Same seed, heads on or off: the same world-model weights after training (gradient
    clipping included), the same losses; the ensemble's loss is reported apart."""
    off, m_off = _train(0)
    on, m_on = _train(3)
    for k, v in off.state_dict().items():
        assert torch.equal(v, on.state_dict()[k]), k
    assert [m["loss"] for m in m_off] == [m["loss"] for m in m_on]
    assert all(m["ensemble_loss"] == 0.0 for m in m_off)
    assert all(m["ensemble_loss"] > 0.0 for m in m_on)


def test_the_ensemble_loss_trains_the_heads_alone_and_repeats_under_its_seed():
    torch.manual_seed(0)
    model = build_world_model(tiny_cfg(ensemble=3)).train()
    sampler = WindowSampler(synthetic(), 16, TINY_TRAIN.window_len, TINY_TRAIN.windows_per_batch)
    batch = sampler.sample(torch.Generator().manual_seed(0))
    x = batch["x"]
    ctx = model.encode_context(x)
    tgt = model.encode_target(x)
    one = one_step_loss(model, ctx, tgt, batch["poses"].reshape(-1, 4), batch["times"].reshape(-1),
                        TINY_TRAIN.window_len, TINY_TRAIN, torch.Generator().manual_seed(0))
    times = batch["times"].reshape(-1)
    loss = ensemble_loss(model, [one.transitions], times, 0, TINY_TRAIN)
    again = ensemble_loss(model, [one.transitions], times, 0, TINY_TRAIN)
    other = ensemble_loss(model, [one.transitions], times, 1, TINY_TRAIN)
    assert torch.equal(loss, again) and not torch.equal(loss, other)
    loss.backward()
    trained = {name.split(".")[0] for name, p in model.named_parameters() if p.grad is not None}
    assert trained == {"ensemble"}
