"""The scene of a simulated camera (`scene_for`) and the generic scene it falls back to."""

import numpy as np

from services.camera.sim.scene_map import scene_for
from shared.config import load_settings
from shared.scene import ZONE_KINDS, Scene


def test_generic_scene_regions_are_pan_sectors():
    scene = Scene(load_settings(environ={}).camera.ranges())
    assert scene.regions() == [f"pan {s * 45}-{s * 45 + 45}" for s in range(8)]
    assert scene.region_of(10.0, 0.0) == "pan 0-45"
    assert scene.region_of(-10.0, 0.0) == "pan 315-360"
    assert scene.region_of(365.0, 0.0) == "pan 0-45"


def test_a_real_camera_gets_the_generic_scene(tmp_path):
    settings = load_settings(environ={}, data_dir=tmp_path, camera={"driver": "hanwha"})
    scene = scene_for(settings)
    assert scene.kind == "generic" and scene.background is None and not scene.notes


def test_the_simulated_scene_has_the_worlds_zones_and_panorama(tmp_path):
    settings = load_settings(environ={}, data_dir=tmp_path)
    assert settings.camera.driver == "sim"
    scene = scene_for(settings)
    assert scene.kind == "sim" and scene.zones and not scene.notes
    assert scene.regions() == [*scene.zones, "static"]
    assert set(scene.zone_kinds) == set(scene.zones)
    assert set(scene.zone_kinds.values()) == set(ZONE_KINDS) - {"static"}
    name, (yaw0, span, lo, hi) = next(iter(scene.zones.items()))
    assert scene.region_of(yaw0 + span / 2, (lo + hi) / 2) == name
    assert scene.background is not None and scene.background.dtype == np.uint8
    assert scene.background.ndim == 3 and scene.background.shape[2] == 3
    assert scene.extent is not None and scene.extent[:2] == (0.0, 360.0)
    assert scene.extent[2] < scene.extent[3]
    without = scene_for(settings, with_background=False)
    assert without.zones == scene.zones and without.background is None
