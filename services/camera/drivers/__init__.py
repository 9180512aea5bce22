"""Camera drivers: one interface (base.CameraDriver), one implementation per camera family."""

from __future__ import annotations

from shared.config import ConfigError, Settings

from services.camera.drivers.base import CameraDriver


def make_driver(settings: Settings) -> CameraDriver:
    """The driver named by `settings.camera.driver`."""
    driver = settings.camera.driver
    if driver == "sim":
        from services.camera.drivers.sim import SimDriver

        return SimDriver.from_settings(settings)
    raise ConfigError(f"camera.driver: '{driver}' has no driver in this release yet; "
                      f"use 'sim' (Hanwha, Axis and ONVIF drivers are planned)")
