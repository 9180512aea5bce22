import pytest

from bench.worldmodel_sim import make_world


@pytest.fixture(scope="module")
def world():
    """The bench's simulated site (seed 0) on a small panorama, built once per test module."""
    return make_world(0, None, pano_width=1024, pano_height=512)
