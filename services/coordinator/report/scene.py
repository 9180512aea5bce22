"""The scene a node's camera looks at, for maps and per-region errors.

For a simulated camera the report rebuilds the node's simulated world from the settings (the same
seed, panorama and field of view as the camera service, reusing its panorama cache): pan/tilt maps
are drawn over the panorama and the regions are the world's known dynamic zones (road, plaza, lake,
birds, sign) plus "static" (everything else), so "where is the world model wrong?" meets the ground
truth of "where does the world change?". The simulator belongs to the camera service; the report is
an offline analysis tool, so it imports it lazily and only for simulated cameras, and falls back to
the generic scene (with a note) when it is not installed.

For real cameras (or without the simulator) maps are plain pan/tilt scatters and the regions are
eight 45-degree pan sectors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shared.pose import PoseRanges

log = logging.getLogger(__name__)


@dataclass
class Scene:
    ranges: PoseRanges
    kind: str = "generic"  # "sim" or "generic"
    background: np.ndarray | None = None  # RGB uint8, covering `extent`
    extent: tuple[float, float, float, float] | None = None  # pan0, pan1, tilt0, tilt1 (degrees)
    zones: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)  # yaw0, span, lo, hi
    notes: list[str] = field(default_factory=list)

    def region_of(self, pan: float, tilt: float) -> str:
        if self.kind == "sim":
            for name, (yaw0, span, lo, hi) in self.zones.items():
                if (pan - yaw0) % 360.0 < span and lo <= tilt < hi:
                    return name
            return "static"
        sector = int(((pan % 360.0) // 45.0) % 8)
        return f"pan {sector * 45}-{sector * 45 + 45}"

    def regions(self) -> list[str]:
        if self.kind == "sim":
            return [*self.zones, "static"]
        return [f"pan {s * 45}-{s * 45 + 45}" for s in range(8)]


def scene_for(settings, with_background: bool = True) -> Scene:
    ranges = settings.camera.ranges()
    if settings.camera.driver != "sim":
        return Scene(ranges)
    try:
        from services.camera.sim import SimWorld, SimWorldConfig  # lazy: an analysis-only use
    except ImportError as exc:
        scene = Scene(ranges)
        scene.notes.append(f"the simulator is not installed here ({exc}): maps are scatters and "
                           f"regions are pan sectors")
        return scene
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
    scene = Scene(ranges, kind="sim", zones=zones)
    if with_background:
        pano = world.panorama
        h, w = pano.shape[:2]
        margin = 0.5 * world.hfov(ranges.zoom_min) * h / w * 2  # half the widest view's height
        lo = max(-90.0, ranges.tilt_min - margin)
        hi = min(90.0, ranges.tilt_max + margin)
        y0, y1 = int((90.0 - hi) / 180.0 * h), int(np.ceil((90.0 - lo) / 180.0 * h))
        crop = pano[y0:y1]
        step = max(1, w // 900)  # a map panel is a few hundred pixels wide
        scene.background = np.ascontiguousarray(crop[::step, ::step])
        scene.extent = (0.0, 360.0, 90.0 - y1 * 180.0 / h, 90.0 - y0 * 180.0 / h)
    return scene

