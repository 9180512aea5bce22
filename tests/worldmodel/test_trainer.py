"""fit's step budget, its time cap, and the lifelong schedules continuing across resumed runs."""

from __future__ import annotations

import logging

import pytest
import torch

from services.worldmodel.checkpoint import load_resumable, save_resumable
from services.worldmodel.trainer import fit
from services.worldmodel.training import schedules
from shared.models import build_world_model
from tests.support.tiny_models import one_thread  # noqa: F401  (an autouse fixture)
from tests.worldmodel.test_training import TINY_TRAIN, synthetic, tiny_cfg

# A schedule short enough that a few steps cross warm-up, cosine and floor.
LIFELONG = TINY_TRAIN.replace(epochs=None, steps_per_epoch=2, schedule_steps=8, warmup_frac=0.25,
                              start_lr=1e-4, lr=3e-3, final_lr=3e-4, ema_start=0.99, ema_end=0.995)


def _model():
    torch.manual_seed(0)
    return build_world_model(tiny_cfg())


def _lrs(events: list[dict], key: str = "lr") -> list[float]:
    return [e[key] for e in events if e["kind"] == "step"]


def test_fit_stops_after_exactly_its_steps():
    events: list[dict] = []
    r = fit(_model(), synthetic(), LIFELONG.replace(steps=5), progress=events.append)
    assert r.stop_reason == "steps" and r.steps == 5 and r.lifetime_steps == 5
    assert r.epochs == 2 and len(r.epoch_losses) == 2  # the fifth step is a partial epoch
    assert r.final_loss == r.epoch_losses[-1]
    assert [e["step"] for e in events if e["kind"] == "step"] == [1, 2, 3, 4, 5]


def test_a_run_shorter_than_an_epoch_still_reports_its_loss():
    r = fit(_model(), synthetic(), LIFELONG.replace(steps=1, steps_per_epoch=4))
    assert r.stop_reason == "steps" and r.epochs == 0 and r.epoch_losses == []
    assert r.final_loss is not None and r.final_loss > 0


def test_the_time_cap_fires_and_is_reported(caplog):
    ticks = iter(range(1000))  # every clock read advances 1 s
    with caplog.at_level(logging.WARNING, logger="services.worldmodel.trainer"):
        r = fit(_model(), synthetic(), LIFELONG.replace(steps=100, time_budget_s=3.0),
                clock=lambda: float(next(ticks)))
    assert r.stop_reason == "time_budget" and r.steps == 2
    assert "time cap" in caplog.text and "2 of 100 steps" in caplog.text
    # The cap does not size the schedules: the run sits where step 2 of the lifetime is.
    assert r.state.schedule_steps == LIFELONG.schedule_steps


def test_the_schedule_continues_across_resumed_runs(tmp_path):
    one_long: list[dict] = []
    fit(_model(), synthetic(), LIFELONG.replace(steps=6), progress=one_long.append)
    first: list[dict] = []
    r1 = fit(_model(), synthetic(), LIFELONG.replace(steps=3), progress=first.append)
    path = tmp_path / "resume.safetensors"
    save_resumable(r1.state, LIFELONG, path)
    state = load_resumable(path, LIFELONG)
    assert state.step == 3
    second: list[dict] = []
    r2 = fit(state.model, synthetic(), LIFELONG.replace(steps=3), state=state,
             progress=second.append)
    assert r2.steps == 3 and r2.lifetime_steps == 6 and r2.stop_reason == "steps"
    # The second run starts where one long run is at step 3, not at a new warm-up.
    assert _lrs(second)[0] == pytest.approx(_lrs(one_long)[3])
    assert _lrs(first) + _lrs(second) == pytest.approx(_lrs(one_long))
    assert _lrs(second)[0] == pytest.approx(schedules(3, 8, LIFELONG)[0])
    assert _lrs(second, "momentum") == pytest.approx(_lrs(one_long, "momentum")[3:])
    assert _lrs(second, "weight_decay") == pytest.approx(_lrs(one_long, "weight_decay")[3:])


def test_the_lifelong_schedule_holds_its_floors():
    cfg = LIFELONG
    warm = schedules(0, 8, cfg)
    peak = schedules(2, 8, cfg)
    end = schedules(8, 8, cfg)
    assert warm[0] == pytest.approx(cfg.start_lr) and peak[0] == pytest.approx(cfg.lr)
    assert end == pytest.approx((cfg.final_lr, cfg.final_weight_decay, cfg.ema_end))
    for step in (9, 100, 10**6):
        assert schedules(step, 8, cfg) == pytest.approx(end)
    assert all(schedules(s, 8, cfg)[0] >= cfg.final_lr > 0 for s in range(2, 20))  # after warm-up
    assert all(schedules(s, 8, cfg)[2] <= cfg.ema_end < 1 for s in range(20))
