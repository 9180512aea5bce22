"""Resumable checkpoints keep the lifelong schedule's position; older files are never misread."""

from __future__ import annotations

import json

import pytest
import torch

from services.worldmodel.checkpoint import resumable_bytes, state_from_bytes
from services.worldmodel.trainer import fit
from shared.models import build_world_model
from shared.models.checkpoint import CheckpointError, from_bytes, to_bytes
from tests.support.tiny_models import one_thread  # noqa: F401  (an autouse fixture)
from tests.worldmodel.test_trainer import LIFELONG
from tests.worldmodel.test_training import synthetic, tiny_cfg


def _trained(steps: int = 3):
    torch.manual_seed(0)
    return fit(build_world_model(tiny_cfg()), synthetic(), LIFELONG.replace(steps=steps))


def _with_counters(data: bytes, change) -> bytes:
    """The same file with its counters rewritten, as an older writer would have left them."""
    tensors, meta, _cfg = from_bytes(data, kind="resume")
    counters = json.loads(meta["counters"])
    change(counters)
    return to_bytes(tensors, {**meta, "counters": json.dumps(counters)})


def test_round_trip_keeps_the_lifetime_step_and_generator():
    r = _trained(steps=3)
    data = resumable_bytes(r.state, LIFELONG)
    state = state_from_bytes(data, LIFELONG)
    assert (state.step, state.epoch) == (3, 1)
    assert state.schedule_steps == LIFELONG.schedule_steps
    assert torch.equal(state.generator.get_state(), r.state.generator.get_state())
    # The schedule's length is the continuing config's, not the file's.
    longer = LIFELONG.replace(schedule_steps=50)
    assert state_from_bytes(data, longer).schedule_steps == 50


def test_a_file_from_before_lifelong_schedules_needs_its_lifetime_step():
    data = resumable_bytes(_trained(steps=2).state, LIFELONG)
    old = _with_counters(data, lambda c: c.pop("schedule"))
    with pytest.raises(CheckpointError, match="before lifelong schedules"):
        state_from_bytes(old, LIFELONG)
    assert state_from_bytes(old, LIFELONG, lifetime_step=lambda: 40).step == 40
    # The callback is for old files only: a current file's own counter wins.
    assert state_from_bytes(data, LIFELONG, lifetime_step=lambda: 40).step == 2


def test_an_unknown_schedule_marker_is_refused():
    data = resumable_bytes(_trained(steps=1).state, LIFELONG)
    odd = _with_counters(data, lambda c: c.update(schedule="per-job"))
    with pytest.raises(CheckpointError, match="before lifelong schedules"):
        state_from_bytes(odd, LIFELONG, lifetime_step=lambda: 1)
