"""The scene a node's camera looks at, as the analysis report needs it: maps and per-region errors.

A generic scene (real cameras, or a site whose world is unknown here) has plain pan/tilt maps and
eight 45-degree pan sectors as regions. A simulated scene carries the world's known zones (road,
plaza, lake, birds, sign, dial, screen, board) with their kinds (`ZONE_KINDS`) plus "static"
(everything else), and optionally a crop of its panorama to draw the maps over, so "where is the
world model wrong?" meets the ground truth of "where does the world change, and how?". The camera
package builds simulated scenes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from shared.pose import PoseRanges

SECTOR_DEG = 45.0
SECTORS = 8

# What a simulated zone shows, i.e. what a world model can learn there:
# "noise": fresh random content at every instant (unlearnable by construction);
# "periodic": motion whose phase shows in one frame (learnable from one frame plus dt);
# "movers": objects whose heading and speed show in one frame;
# "detail": static fine structure that resolves only at high zoom (learnable by memorising the site);
# "static": everything else.
ZONE_KINDS: tuple[str, ...] = ("noise", "periodic", "movers", "detail", "static")
# The kinds a world model can learn (what a curiosity should seek, and the benches score together).
LEARNABLE_KINDS: tuple[str, ...] = ("periodic", "movers", "detail")


@dataclass
class Scene:
    ranges: PoseRanges
    kind: str = "generic"  # "sim" or "generic"
    background: np.ndarray | None = None  # RGB uint8, covering `extent`
    extent: tuple[float, float, float, float] | None = None  # pan0, pan1, tilt0, tilt1 (degrees)
    zones: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)  # yaw0, span, lo, hi
    zone_kinds: dict[str, str] = field(default_factory=dict)  # zone name -> one of ZONE_KINDS
    notes: list[str] = field(default_factory=list)

    def region_of(self, pan: float, tilt: float) -> str:
        if self.kind == "sim":
            for name, (yaw0, span, lo, hi) in self.zones.items():
                if (pan - yaw0) % 360.0 < span and lo <= tilt < hi:
                    return name
            return "static"
        sector = int(((pan % 360.0) // SECTOR_DEG) % SECTORS)
        return _sector_name(sector)

    def regions(self) -> list[str]:
        if self.kind == "sim":
            return [*self.zones, "static"]
        return [_sector_name(s) for s in range(SECTORS)]


def _sector_name(sector: int) -> str:
    start = int(sector * SECTOR_DEG)
    return f"pan {start}-{start + int(SECTOR_DEG)}"
