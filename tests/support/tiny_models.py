"""Tiny real world models for the dreamer and agent tests (no mocks of the model); the fixtures
are re-exported by tests/agent/conftest.py and tests/dreamer/conftest.py."""

from __future__ import annotations

import pytest
import torch

from shared.models import EncoderConfig, PredictorConfig, SurpriseConfig, WorldModelConfig, build_world_model
from shared.models.config import EnsembleConfig


def tiny_config(*, img_size: int = 32, patch_size: int = 8, encoder_depth: int = 1,
                predictor_depth: int = 1, targets: tuple[str, ...] = ("pred_error",),
                ensemble: int = 0, query_self_attn: bool = True,
                strides: tuple[int, int] = (1, 1)) -> WorldModelConfig:
    """A world model small enough for unit tests; `strides` is (query_stride, memory_stride),
    `ensemble` the bootstrap ensemble's heads (0: none)."""
    return WorldModelConfig(
        encoder=EncoderConfig(img_size=img_size, patch_size=patch_size, dim=32,
                              depth=encoder_depth, heads=2),
        predictor=PredictorConfig(dim=32, depth=predictor_depth, heads=2,
                                  query_self_attn=query_self_attn, query_stride=strides[0],
                                  memory_stride=strides[1]),
        surprise=SurpriseConfig(targets=targets, primary=targets[0], hidden=16),
        ensemble=EnsembleConfig(heads=ensemble, hidden=16), name="tiny")


@pytest.fixture(scope="module")
def tiny_wm():
    torch.manual_seed(0)
    model = build_world_model(tiny_config()).eval()
    model.surprise.mark_ready()
    return model


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks run fastest on one thread, and a loaded 2-core machine punishes
    oversubscription; the previous setting is restored after each test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
