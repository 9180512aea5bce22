"""Each loss of a training step on its own: shapes, zero when disabled, where gradients flow."""

from __future__ import annotations

import pytest
import torch

from services.worldmodel.config import TrainConfig
from services.worldmodel.losses import (
    one_step_loss,
    pair_dt,
    pair_table,
    rollout_loss,
    surprise_loss,
    variance_floor,
)
from shared.models import build_world_model
from tests.support.tiny_models import one_thread, tiny_config  # noqa: F401  (an autouse fixture)

ALL_TARGETS = ("pred_error", "grad_norm")
N_WINDOWS, WINDOW_LEN, CELLS, DIM = 2, 3, 16, 32


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_world_model(tiny_config(img_size=16, patch_size=4, targets=ALL_TARGETS,
                                         ensemble=2)).train()


@pytest.fixture
def batch(model):
    """(context tokens, target tokens, penultimate tokens, flat poses, flat capture times) of two
    3-frame windows."""
    torch.manual_seed(1)
    x = torch.rand(N_WINDOWS * WINDOW_LEN, 3, 16, 16)
    poses = torch.rand(N_WINDOWS * WINDOW_LEN, 4)
    times = 1.7e9 + torch.tensor([0.0, 0.5, 1.75, 100.0, 101.0, 103.0], dtype=torch.float64)
    tgt, pen = model.encode_target(x, return_penultimate=True)
    return model.encode_context(x), tgt.float(), pen, poses, times


def train_cfg(**kw) -> TrainConfig:
    return TrainConfig(window_len=WINDOW_LEN, windows_per_batch=N_WINDOWS, rollout_horizon=2).replace(**kw)


def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def test_pair_table_lists_each_frames_window_mates():
    assert pair_table(3, 2).tolist() == [[1, 2], [0, 2], [0, 1], [4, 5], [3, 5], [3, 4]]


@pytest.mark.parametrize("queries", [None, 5])
def test_one_step_pairs_every_ordered_pair_of_a_window(model, batch, queries):
    ctx, tgt, _, poses, times = batch
    one = one_step_loss(model, ctx, tgt, poses, times, WINDOW_LEN, train_cfg(train_queries=queries),
                        generator())
    cells = CELLS if queries is None else queries
    assert one.transitions.pred.shape == (N_WINDOWS * WINDOW_LEN, WINDOW_LEN - 1, cells, DIM)
    assert one.transitions.true.shape == one.transitions.pred.shape
    assert one.transitions.target_frames.tolist() == pair_table(WINDOW_LEN, N_WINDOWS).tolist()
    assert (one.transitions.cells is None) == (queries is None)
    assert one.loss > 0 and one.loss_stay == 0
    # The one-step loss trains the context encoder: its gradient reaches it.
    one.loss.backward()
    assert model.encoder.patch_embed.weight.grad is not None


def test_pair_dt_is_signed_and_exact_on_posix_times(model, batch):
    """Each pair gets the seconds from its source to its target, negative when it looks back,
    exact to the millisecond although the times are POSIX seconds (float32 would round them)."""
    times = batch[4]
    dt = pair_dt(times, pair_table(WINDOW_LEN, N_WINDOWS))
    assert dt.dtype == torch.float32
    assert dt.tolist() == [[0.5, 1.75], [-0.5, 1.25], [-1.75, -1.25], [1.0, 3.0], [-1.0, 2.0],
                           [-3.0, -2.0]]


def test_one_step_predictions_depend_on_the_pairs_dt(model, batch):
    ctx, tgt, _, poses, times = batch
    a = one_step_loss(model, ctx, tgt, poses, times, WINDOW_LEN, train_cfg(), generator())
    b = one_step_loss(model, ctx, tgt, poses, times * 1.0 + torch.arange(6.0, dtype=torch.float64),
                      WINDOW_LEN, train_cfg(), generator())
    assert not torch.equal(a.transitions.pred, b.transitions.pred)


def test_stays_are_their_own_loss_and_not_transitions(model, batch):
    ctx, tgt, _, poses, times = batch
    without = one_step_loss(model, ctx, tgt, poses, times, WINDOW_LEN, train_cfg(), generator())
    with_stay = one_step_loss(model, ctx, tgt, poses, times, WINDOW_LEN, train_cfg(stay_weight=1.0),
                              generator())
    assert with_stay.loss_stay > 0
    assert with_stay.transitions.pred.shape == without.transitions.pred.shape
    assert with_stay.transitions.target_frames.tolist() == without.transitions.target_frames.tolist()


def test_rollout_is_zero_without_a_horizon(model, batch):
    _, tgt, _, poses, times = batch
    loss, steps = rollout_loss(model, tgt, poses, times, WINDOW_LEN, train_cfg(rollout_horizon=0),
                               generator())
    assert loss == 0 and steps == []


@pytest.mark.parametrize("bptt", [True, False])
def test_rollout_feeds_predictions_back_with_or_without_a_graph(model, batch, bptt):
    _, tgt, _, poses, times = batch
    loss, steps = rollout_loss(model, tgt, poses, times, WINDOW_LEN,
                               train_cfg(rollout_bptt=bptt, rollout_chains=1), generator())
    assert len(steps) == 2 and loss > 0
    assert all(step.pred.shape == (1, 1, CELLS, DIM) for step in steps)
    first, second = steps
    # Each step predicts the next frame of the same window, forwards or backwards.
    assert abs(int(second.target_frames) - int(first.target_frames)) == 1
    through_chain = torch.autograd.grad(second.pred.sum(), first.pred, allow_unused=True)[0]
    assert (through_chain is not None) == bptt


def test_rollout_without_bptt_trains_on_the_queried_cells_only(model, batch):
    _, tgt, _, poses, times = batch
    _, steps = rollout_loss(model, tgt, poses, times, WINDOW_LEN,
                            train_cfg(rollout_bptt=False, train_queries=5), generator())
    assert all(step.pred.shape == (N_WINDOWS, 1, 5, DIM) and step.cells is not None
               for step in steps)


def test_surprise_heads_learn_from_detached_features_only(model, batch):
    ctx, tgt, pen, poses, times = batch
    cfg = train_cfg(train_queries=5)
    one = one_step_loss(model, ctx, tgt, poses, times, WINDOW_LEN, cfg, generator())
    _, steps = rollout_loss(model, tgt, poses, times, WINDOW_LEN, cfg, generator())
    groups = [one.transitions, *steps]
    surprise = surprise_loss(model, groups, pen)
    assert [i for i, _ in surprise.log_targets] == [0, 1] * len(groups)
    assert [e.numel() for e in surprise.errors] == [6 * 2, N_WINDOWS, N_WINDOWS]
    surprise.loss.backward()
    trained = {name.split(".")[0] + "." + name.split(".")[1]
               for name, p in model.named_parameters() if p.grad is not None}
    assert trained == {"surprise.net"}


def test_surprise_loss_leaves_the_heads_offsets_to_the_caller(model, batch):
    ctx, tgt, pen, poses, times = batch
    one = one_step_loss(model, ctx, tgt, poses, times, WINDOW_LEN, train_cfg(), generator())
    before = model.surprise.log_offset.clone()
    surprise_loss(model, [one.transitions], pen)
    assert torch.equal(model.surprise.log_offset, before)


def test_variance_floor_is_zero_for_spread_tokens_and_positive_for_collapsed_ones():
    spread = torch.tensor([[[-2.0]], [[2.0]]])
    assert variance_floor(spread, gamma=1.0) == 0
    collapsed = torch.ones(4, 3, 8)
    assert float(variance_floor(collapsed, gamma=1.0)) == pytest.approx(1.0 - 1e-2)
    # Nearly collapsed tokens are pushed apart: descending the floor spreads them.
    nearly = (torch.ones(4, 3, 8) + 1e-3 * torch.randn(4, 3, 8)).requires_grad_()
    variance_floor(nearly, gamma=1.0).backward()
    assert nearly.grad is not None
    spread_more = (nearly - 10.0 * nearly.grad).detach()
    assert float(spread_more.var(dim=0).mean()) > float(nearly.detach().var(dim=0).mean())
