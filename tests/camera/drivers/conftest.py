"""Emulated cameras on loopback for the driver tests: one uvicorn server per protocol for the whole
session (faults and settle time reset around each test), drivers built with short timeouts.

Nothing here is mocked: the drivers speak SUNAPI, VAPIX and ONVIF over real HTTP with digest auth
to the emulators, which render frames with the simulated world.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from pydantic import SecretStr

from services.camera.drivers import driver_class
from services.camera.drivers.http import ConnectionOptions
from services.camera.drivers.options import DriverOptions, MotionOptions
from services.camera.emulators import EmulatorApp, EmulatorConfig, build_emulator
from services.camera.sim import SimWorld, SimWorldConfig, generate_panorama
from shared.pose import PoseRanges
from tests.support.servers import ThreadedServer

DRIVERS = ("hanwha", "axis", "onvif")
PASSWORD = "Pa55-w0rd_n3ver-l0gged"
USER = "operator"
# Each camera family in its own pan frame (Axis -180..180), as the docs tell users to configure them.
RANGES = {"hanwha": PoseRanges(0, 360, -30, 30, 1, 10), "axis": PoseRanges(-180, 180, -30, 30, 1, 10),
          "onvif": PoseRanges(0, 360, -30, 30, 1, 10)}
EMULATOR = EmulatorConfig(user=USER, password=SecretStr(PASSWORD), settle_s=0.05, width=96, height=96,
                          fault_timeout_s=0.4)
SETTLE_S = EMULATOR.settle_s


def make_world(panorama, ranges: PoseRanges) -> SimWorld:
    return SimWorld(SimWorldConfig(seed=0, pano_width=1024, pano_height=512, ranges=ranges),
                    panorama=panorama)


def driver_options(protocol: str, port: int, password: str = PASSWORD, **overrides) -> DriverOptions:
    """Short timeouts and polls so the whole folder stays fast; `overrides` go to the connection
    (timeout_s, retries, ...) or the motion options (settle_timeout_s, sharpness_threshold, ...)."""
    conn = ConnectionOptions(host="127.0.0.1", port=port, user=USER, password=SecretStr(password),
                             timeout_s=2.0, retries=2, backoff_s=0.01)
    motion = MotionOptions(settle_timeout_s=2.0, settle_poll_s=0.01, sharpness_wait_s=0.01)
    conn = replace(conn, **{k: v for k, v in overrides.items() if hasattr(conn, k)})
    motion = replace(motion, **{k: v for k, v in overrides.items() if hasattr(motion, k)})
    extra = {k: v for k, v in overrides.items() if not hasattr(conn, k) and not hasattr(motion, k)}
    return DriverOptions(connection=conn, ranges=RANGES[protocol], motion=motion, camera="testcam", **extra)


@dataclass
class Emulated:
    protocol: str
    app: EmulatorApp
    port: int

    def driver(self, **overrides):
        return driver_class(self.protocol)(driver_options(self.protocol, self.port, **overrides))

    def reset(self) -> None:
        self.app.faults.clear()
        self.app.mechanics.settle_s = SETTLE_S


@pytest.fixture(scope="session")
def panorama():
    return generate_panorama(0, 1024, 512)


@pytest.fixture(scope="session")
def emulators(panorama):
    servers, running = [], {}
    try:
        for protocol in DRIVERS:
            app = build_emulator(protocol, make_world(panorama, RANGES[protocol]), EMULATOR)
            server = ThreadedServer(app).__enter__()
            servers.append(server)
            running[protocol] = Emulated(protocol, app, server.port)
        yield running
    finally:
        for server in servers:
            server.__exit__(None, None, None)


@pytest.fixture(params=DRIVERS)
def emu(request, emulators) -> Emulated:
    emulated = emulators[request.param]
    emulated.reset()
    yield emulated
    emulated.reset()


@pytest.fixture
def driver(emu):
    d = emu.driver()
    yield d
    d.close()
