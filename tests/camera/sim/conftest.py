"""Shared fixtures: a small world (1024x512 panorama) keeps the whole folder fast."""

from __future__ import annotations

import pytest

from services.camera.sim import SimWorld, SimWorldConfig

SMALL = SimWorldConfig(seed=0, pano_width=1024, pano_height=512)


@pytest.fixture(scope="session")
def small_world() -> SimWorld:
    return SimWorld(SMALL)
