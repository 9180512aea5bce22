"""Camera emulators: HTTP servers that speak SUNAPI (Hanwha), VAPIX (Axis) and ONVIF, backed by
the simulated world, with digest auth, settle time, latency and injected faults.

They let the real drivers be tested end to end over real HTTP without a camera, and let anyone
try a real-camera configuration on a laptop: `python -m services.camera.emulators axis --port 8081`
(docs/cameras.md). `build_emulator` is what tests and the CLI use.
"""

from __future__ import annotations

from services.camera.emulators.core import (
    FAULT_KINDS,
    OPS,
    EmulatorApp,
    EmulatorConfig,
    EmulatorStats,
    FaultPlan,
    Mechanics,
)
from services.camera.sim.world import SimWorld

PROTOCOLS = ("hanwha", "axis", "onvif")


def build_emulator(protocol: str, world: SimWorld, config: EmulatorConfig, **kwargs) -> EmulatorApp:
    """The ASGI app of an emulated `protocol` camera over `world` (whose ranges are the camera's)."""
    if protocol == "hanwha":
        from services.camera.emulators.hanwha import HanwhaEmulator

        return HanwhaEmulator(world, config, **kwargs)
    if protocol == "axis":
        from services.camera.emulators.axis import AxisEmulator

        return AxisEmulator(world, config, **kwargs)
    if protocol == "onvif":
        from services.camera.emulators.onvif import OnvifEmulator

        return OnvifEmulator(world, config, **kwargs)
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


__all__ = ["FAULT_KINDS", "OPS", "PROTOCOLS", "EmulatorApp", "EmulatorConfig", "EmulatorStats",
           "FaultPlan", "Mechanics", "build_emulator"]
