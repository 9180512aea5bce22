"""Camera drivers: one interface (base.CameraDriver), one implementation per camera family.

`sim` is the simulated camera; `hanwha` (SUNAPI), `axis` (VAPIX) and `onvif` talk to real cameras
over HTTP (docs/cameras.md). Real drivers are imported only when chosen, and building one sends no
request: configuration errors (a missing password, unmappable ranges) are raised here, at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.camera.drivers.base import CameraDriver
from shared.config import ConfigError, Settings

if TYPE_CHECKING:
    from services.camera.drivers.ptz import HttpPtzDriver

REAL_DRIVERS = ("hanwha", "axis", "onvif")


def make_driver(settings: Settings) -> CameraDriver:
    """The driver named by `settings.camera.driver`."""
    driver = settings.camera.driver
    if driver == "sim":
        from services.camera.drivers.sim import SimDriver

        return SimDriver.from_settings(settings)
    if driver in REAL_DRIVERS:
        from services.camera.drivers.options import DriverOptions

        options = DriverOptions.from_settings(settings)
        return driver_class(driver)(options)
    raise ConfigError(f"camera.driver: unknown driver '{driver}'; choose sim, {', '.join(REAL_DRIVERS)}")


def driver_class(driver: str) -> type[HttpPtzDriver]:
    if driver == "hanwha":
        from services.camera.drivers.hanwha import HanwhaDriver

        return HanwhaDriver
    if driver == "axis":
        from services.camera.drivers.axis import AxisDriver

        return AxisDriver
    if driver == "onvif":
        from services.camera.drivers.onvif import OnvifDriver

        return OnvifDriver
    raise ConfigError(f"camera.driver: '{driver}' is not a real-camera driver")
