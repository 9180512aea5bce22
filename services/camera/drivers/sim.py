"""The simulated camera behind the driver interface (the embedded default, tests, benchmarks)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from services.camera.drivers.base import CameraBadResponse, CameraDriver, CameraTimeout, DriverInfo, Snapshot
from services.camera.sim.camera import SimCamera, SimCameraConfig, SimFault
from services.camera.sim.world import SimWorld, SimWorldConfig
from shared.config import Settings
from shared.pose import Pose


class SimDriver(CameraDriver):
    name = "sim"

    def __init__(self, camera: SimCamera, width: int, height: int):
        self.camera = camera
        self.width, self.height = width, height

    @classmethod
    def from_settings(cls, settings: Settings) -> SimDriver:
        sim = settings.camera.sim
        world = SimWorld(SimWorldConfig(
            seed=sim.seed, panorama_path=str(sim.panorama_path) if sim.panorama_path else None,
            base_hfov_deg=sim.base_hfov_deg, ranges=settings.camera.ranges(),
            cache_dir=str(Path(settings.data_dir) / "cache" / "panoramas")))
        camera = SimCamera(world, SimCameraConfig(move_latency_s=sim.move_latency_s,
                                                  fault_rate=sim.fault_rate,
                                                  fault_kinds=tuple(sim.fault_kinds),
                                                  fault_seed=sim.seed))
        return cls(camera, sim.width, sim.height)

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except SimFault as fault:
            if fault.kind == "timeout":
                raise CameraTimeout(f"simulated camera: {fault.message}") from None
            raise CameraBadResponse(f"simulated camera: {fault.message}") from None

    def info(self) -> DriverInfo:
        world = self.camera.world
        return DriverInfo(driver=self.name, ranges=world.ranges,
                          hfov_deg_at_min_zoom=world.hfov(world.ranges.zoom_min),
                          image_width=self.width, image_height=self.height,
                          extra={"seed": world.config.seed, "panorama": world.config.panorama_path})

    def position(self) -> Pose:
        return self._call(self.camera.position)

    def move_absolute(self, pose: Pose) -> Pose:
        return self._call(self.camera.move_absolute, pose)

    def move_relative(self, d_pan: float, d_tilt: float, d_zoom: float) -> Pose:
        return self._call(self.camera.move_relative, d_pan, d_tilt, d_zoom)

    def snapshot(self) -> Snapshot:
        image, pose, t = self._call(self.camera.snapshot, self.width, self.height)
        world = self.camera.world
        return Snapshot(image=image, pose=pose, captured_at=datetime.now(UTC), sim_time=t,
                        dynamic_fraction=world.dynamic_fraction(pose, t),
                        kind_fractions=world.kind_fractions(pose))
