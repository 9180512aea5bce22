"""Tiny real world models for the dreamer and agent tests (no mocks of the model); the fixtures
are re-exported by tests/agent/conftest.py and tests/dreamer/conftest.py."""

from __future__ import annotations

import pytest
import torch

from shared.models import EncoderConfig, PredictorConfig, SurpriseConfig, WorldModelConfig, build_world_model


def tiny_config() -> WorldModelConfig:
    return WorldModelConfig(
        encoder=EncoderConfig(img_size=32, patch_size=8, dim=32, depth=1, heads=2),
        predictor=PredictorConfig(dim=32, depth=1, heads=2),
        surprise=SurpriseConfig(targets=("pred_error",), primary="pred_error", hidden=16),
        name="tiny")


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
