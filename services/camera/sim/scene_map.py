"""The scene of a simulated camera, for the analysis report's maps and per-region errors.

`scene_for(settings)` rebuilds the node's simulated world from the settings (the same seed,
panorama and field of view as the camera service, reusing its panorama cache) and describes it as
a `shared.scene.Scene`: the world's zones with their kinds, and a crop of the panorama to draw maps
over.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from services.camera.sim.world import SimWorld, SimWorldConfig
from shared.config import Settings
from shared.pose import PoseRanges
from shared.scene import Scene

# A map panel is a few hundred pixels wide: the panorama is subsampled to about this width.
BACKGROUND_WIDTH = 900


def scene_for(settings: Settings, with_background: bool = True) -> Scene:
    """The simulated world's scene, or the generic scene (with a note) when the camera is not
    simulated or its world cannot be rebuilt."""
    ranges = settings.camera.ranges()
    if settings.camera.driver != "sim":
        return Scene(ranges)
    sim = settings.camera.sim
    try:
        world = SimWorld(SimWorldConfig(
            seed=sim.seed, panorama_path=str(sim.panorama_path) if sim.panorama_path else None,
            base_hfov_deg=sim.base_hfov_deg, ranges=ranges,
            cache_dir=str(Path(settings.data_dir) / "cache" / "panoramas")))
    except Exception as exc:
        scene = Scene(ranges)
        scene.notes.append(f"the simulated world could not be rebuilt ({exc}): maps are scatters")
        return scene
    zones = {name: (r.yaw0 % 360.0, r.yaw_span, r.pitch_lo, r.pitch_hi)
             for name, r in world.layout.zones().items()}
    scene = Scene(ranges, kind="sim", zones=zones, zone_kinds=world.zone_kinds())
    if with_background:
        _add_background(scene, world, ranges)
    return scene


def _add_background(scene: Scene, world: SimWorld, ranges: PoseRanges) -> None:
    """The panorama's band the camera can see (tilt range plus half the widest view), subsampled."""
    pano = world.panorama
    h, w = pano.shape[:2]
    margin = 0.5 * world.hfov(ranges.zoom_min) * h / w * 2  # half the widest view's height
    lo = max(-90.0, ranges.tilt_min - margin)
    hi = min(90.0, ranges.tilt_max + margin)
    y0, y1 = int((90.0 - hi) / 180.0 * h), int(np.ceil((90.0 - lo) / 180.0 * h))
    crop = pano[y0:y1]
    step = max(1, w // BACKGROUND_WIDTH)
    scene.background = np.ascontiguousarray(crop[::step, ::step])
    scene.extent = (0.0, 360.0, 90.0 - y1 * 180.0 / h, 90.0 - y0 * 180.0 / h)
