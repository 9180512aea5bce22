"""The simulated PTZ world: a panorama-based site with known dynamic regions and a simulated camera.

Used by the embedded default run, the tests and the benchmarks; docs/simulator.md describes the site,
its zone kinds and their ground truth. Nothing is generated at import
time; building a `SimWorld` generates (or loads) its panorama.
"""

from .camera import FAULT_KINDS, SimCamera, SimCameraConfig, SimClock, SimFault
from .dynamics import DynamicsConfig, SceneDynamics
from .layout import ZONE_KIND, AngleRect, SiteLayout, site_layout
from .panorama import PanoramaError, generate_panorama, load_panorama, panorama_for
from .world import SimWorld, SimWorldConfig

__all__ = [
    "FAULT_KINDS", "ZONE_KIND", "AngleRect", "DynamicsConfig", "PanoramaError", "SceneDynamics", "SimCamera",
    "SimCameraConfig", "SimClock", "SimFault", "SimWorld", "SimWorldConfig", "SiteLayout",
    "generate_panorama", "load_panorama", "panorama_for", "site_layout",
]
