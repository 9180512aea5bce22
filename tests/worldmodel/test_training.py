"""Training step, bounded fit loop (every stop condition), resumable checkpoints."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from services.worldmodel.checkpoint import load_resumable, save_resumable
from services.worldmodel.config import TrainConfig
from services.worldmodel.data import DataError, FrameDataset, WindowSampler
from services.worldmodel.trainer import fit, plateaued
from services.worldmodel.training import make_train_state, schedules, train_step
from shared.models import build_world_model
from shared.models.checkpoint import CheckpointError, load_world_model
from tests.support.tiny_models import one_thread, tiny_config  # noqa: F401  (an autouse fixture)

# The windows' frames are 16 x 16: a 4 x 4 grid of cells.
tiny_cfg = functools.partial(tiny_config, img_size=16, patch_size=4, encoder_depth=2)


def synthetic(rounds=3, per_round=6, size=16, seed=0) -> FrameDataset:
    """Views of a random periodic texture: the frame shifts with pan, so motion is learnable."""
    rng = np.random.default_rng(seed)
    world = rng.integers(0, 255, (size, 4 * size, 3), dtype=np.uint8)
    frames, poses, ids = [], [], []
    for r in range(rounds):
        pan = float(rng.uniform(0, 360))
        for _ in range(per_round):
            x = int(pan / 360 * 4 * size)
            frames.append(np.roll(world, -x, axis=1)[:, :size])
            poses.append((pan, 0.0, 1.0))
            ids.append(r)
            pan = (pan + float(rng.choice([-20, -10, 10, 20]))) % 360
    return FrameDataset(np.stack(frames), np.array(poses), np.array(ids),
                        np.arange(len(frames), dtype=np.float64))


TINY_TRAIN = TrainConfig(window_len=3, windows_per_batch=2, rollout_horizon=2, lr=3e-3,
                         start_lr=3e-3, warmup_frac=0.0, epochs=2)


@pytest.mark.parametrize("targets,ensemble,queries,strides", [
    (("pred_error",), 0, None, (1, 1)),
    (("pred_error", "grad_norm"), 2, 5, (1, 1)),
    # Coarse queries (2 x 2 cells each) over a pooled memory, the paper preset's kind of predictor.
    (("pred_error", "grad_norm"), 2, 2, (2, 2)),
    (("pred_error",), 2, None, (2, 2)),
])
def test_train_steps_reduce_loss(targets, ensemble, queries, strides):
    torch.manual_seed(0)
    model = build_world_model(tiny_cfg(targets=targets, ensemble=ensemble, strides=strides))
    cfg = TINY_TRAIN.replace(train_queries=queries)
    sampler = WindowSampler(synthetic(), 16, cfg.window_len, cfg.windows_per_batch)
    state = make_train_state(model, cfg, schedule_steps=40)
    fixed = sampler.sample(state.generator)
    first = [train_step(state, fixed, cfg)["loss"] for _ in range(3)]
    for _ in range(25):
        m = train_step(state, fixed, cfg)
    # A coarse predictor (one query per 2 x 2 block, pooled memory) learns this toy motion more
    # slowly: it must emit four different tokens from one query.
    assert m["loss"] < (0.7 if strides == (1, 1) else 0.85) * first[0]
    assert m["transitions"] == 2 * 3 * 2 + 2 * 2
    assert np.isfinite(m["loss_surprise"]) and state.step == 28
    # The EMA moved the target encoder away from its initial copy of the context encoder.
    assert any(not torch.equal(a, b) for a, b in zip(model.encoder.parameters(),
                                                      model.target_encoder.parameters(),
                                                      strict=True))


@torch.no_grad()
def _stay_error(model, data) -> float:
    """The predictor's error for holding still (same pose, same static frame) over `data`."""
    model.eval()
    s = model.encode_state(data.frames)
    p = torch.tensor(data.poses, dtype=torch.float64)
    pred, _ = model.predict(s, p, p, dt=0.0)
    return float(torch.nn.functional.smooth_l1_loss(pred, s))


def test_holding_still_is_learned_and_kept_out_of_the_surprise_heads():
    """With stay_weight, every frame also predicts itself at its own pose (zero move, zero time):
    on a static scene the stay prediction gets closer to "nothing changes" than without. The
    stays add no transitions to the count and never reach the surprise heads."""
    errors, metrics = {}, {}
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        model = build_world_model(tiny_cfg())
        cfg = TINY_TRAIN.replace(stay_weight=weight)
        data = synthetic()
        sampler = WindowSampler(data, 16, cfg.window_len, cfg.windows_per_batch)
        state = make_train_state(model, cfg, schedule_steps=60)
        for _ in range(60):
            m = train_step(state, sampler.sample(state.generator), cfg)
        errors[weight], metrics[weight] = _stay_error(model, data), m
    assert errors[1.0] < 0.7 * errors[0.0]
    assert metrics[0.0]["loss_stay"] == 0.0 and metrics[1.0]["loss_stay"] > 0.0
    assert metrics[1.0]["transitions"] == metrics[0.0]["transitions"] == 2 * 3 * 2 + 2 * 2
    with pytest.raises(ValueError, match="stay_weight"):
        TrainConfig(stay_weight=-1.0)


def test_schedules():
    cfg = TrainConfig(lr=1e-3, start_lr=1e-4, final_lr=1e-5, warmup_frac=0.1, ema_start=0.99,
                      ema_end=1.0, weight_decay=0.04, final_weight_decay=0.4)
    lr0, wd0, m0 = schedules(0, 100, cfg)
    lr_peak, _, _ = schedules(10, 100, cfg)
    lr_end, wd_end, m_end = schedules(100, 100, cfg)
    assert lr0 == pytest.approx(1e-4) and lr_peak == pytest.approx(1e-3)
    assert lr_end == pytest.approx(1e-5) and wd0 == pytest.approx(0.04)
    assert wd_end == pytest.approx(0.4) and m0 == pytest.approx(0.99) and m_end == pytest.approx(1.0)


def _fit(cfg, **kw):
    torch.manual_seed(0)
    return fit(build_world_model(tiny_cfg()), synthetic(), cfg, **kw)


def test_stops_after_epochs_and_reports_progress():
    events = []
    r = _fit(TINY_TRAIN.replace(epochs=2, steps_per_epoch=2), progress=events.append)
    assert r.stop_reason == "epochs" and r.epochs == 2 and r.steps == 4
    assert len(r.epoch_losses) == 2 and all(np.isfinite(r.epoch_losses))
    assert [e["kind"] for e in events].count("epoch") == 2
    assert [e["kind"] for e in events].count("step") == 4
    assert r.transitions_per_s > 0


def test_stops_on_plateau():
    assert plateaued([1.0, 0.5, 0.5, 0.5], patience=2, rel=0.01)
    assert not plateaued([1.0, 0.8, 0.6, 0.4], patience=2, rel=0.01)
    assert not plateaued([0.5, 0.5], patience=2, rel=0.01)
    r = _fit(TINY_TRAIN.replace(epochs=50, steps_per_epoch=1, patience=2, plateau_rel=10.0))
    assert r.stop_reason == "plateau" and r.epochs == 3


def test_stops_on_time_budget():
    ticks = iter(range(1000))
    r = _fit(TINY_TRAIN.replace(epochs=50, steps_per_epoch=2, time_budget_s=3.0),
             clock=lambda: float(next(ticks)))
    assert r.stop_reason == "time_budget" and r.steps == 2


def test_stops_on_request():
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) > 3

    r = _fit(TINY_TRAIN.replace(epochs=50, steps_per_epoch=2), should_stop=should_stop)
    assert r.stop_reason == "stopped" and r.steps == 3 and r.epochs == 1


def test_bad_data_fails_at_once():
    with pytest.raises(DataError, match="empty"):
        FrameDataset(np.zeros((0, 8, 8, 3), np.uint8), np.zeros((0, 3)), np.zeros(0), np.zeros(0))
    lone = FrameDataset(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 3)) + 1, np.array([0, 1]),
                        np.zeros(2))
    with pytest.raises(DataError, match="two frames"):
        fit(build_world_model(tiny_cfg()), lone, TINY_TRAIN)
    with pytest.raises(DataError, match="poses"):
        FrameDataset(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((3, 3)), np.zeros(2), np.zeros(2))
    with pytest.raises(DataError, match="times must be"):
        FrameDataset(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 3)), np.zeros(2), np.zeros(3))
    with pytest.raises(DataError, match="backwards"):
        FrameDataset(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 3)), np.zeros(2),
                     np.array([5.0, 4.0]))


def test_resumable_checkpoint_round_trip(tmp_path):
    cfg = TINY_TRAIN.replace(epochs=2, steps_per_epoch=2)
    r = _fit(cfg)
    path = tmp_path / "resume.safetensors"
    save_resumable(r.state, cfg, path)
    state = load_resumable(path, cfg)
    assert (state.step, state.epoch, state.epoch_losses) == (r.steps, 2, r.epoch_losses)
    for a, b in zip(state.model.state_dict().values(), r.state.model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    s0 = r.state.optimizer.state_dict()["state"]
    s1 = state.optimizer.state_dict()["state"]
    assert s0.keys() == s1.keys()
    assert all(torch.equal(s0[k]["exp_avg"], s1[k]["exp_avg"]) for k in s0)
    # Both continue identically (same data order from the saved generator).
    r1 = fit(r.state.model, synthetic(), cfg.replace(epochs=3), state=r.state)
    r2 = fit(state.model, synthetic(), cfg.replace(epochs=3), state=state)
    assert r1.epochs == r2.epochs == 3
    assert r1.epoch_losses[-1] == pytest.approx(r2.epoch_losses[-1], rel=1e-4)
    # A resumable file also loads as a plain model; a sharing file is refused for resuming.
    assert load_world_model(path).cfg == state.model.cfg
    from shared.models.checkpoint import save_world_model
    save_world_model(state.model, tmp_path / "share.safetensors")
    with pytest.raises(CheckpointError, match="resume"):
        load_resumable(tmp_path / "share.safetensors", cfg)


def test_rollout_without_bptt_queries_cells():
    torch.manual_seed(0)
    model = build_world_model(tiny_cfg())
    cfg = TINY_TRAIN.replace(train_queries=5, rollout_bptt=False, rollout_horizon=2)
    sampler = WindowSampler(synthetic(), 16, cfg.window_len, cfg.windows_per_batch)
    state = make_train_state(model, cfg, schedule_steps=10)
    m = train_step(state, sampler.sample(state.generator), cfg)
    # 2 windows x 3 frames x 2 others one-step pairs + 2 chains x 2 rollout steps.
    assert m["transitions"] == 12 + 4 and np.isfinite(m["loss_rollout"])
