"""What is particular to one protocol: unit mappings seen on the wire, ONVIF discovery behind NAT
and with a skewed camera clock, the emulator's module entry, and configuration errors."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from services.camera.drivers import make_driver, soap
from services.camera.drivers.axis import AxisDriver, units_to_zoom, zoom_to_units
from services.camera.drivers.base import CameraBadResponse
from services.camera.drivers.hanwha import HanwhaDriver
from services.camera.drivers.onvif import OnvifDriver
from services.camera.drivers.options import DriverOptions
from services.camera.emulators import EmulatorConfig, build_emulator
from shared.config import ConfigError
from shared.pose import Pose, PoseRanges
from tests.camera.drivers.conftest import EMULATOR, PASSWORD, RANGES, USER, driver_options, make_world
from tests.camera.drivers.test_contract import close
from tests.support.servers import ThreadedServer, free_port, wait_for
from tests.support.settings import make_settings

ROOT = Path(__file__).resolve().parents[3]


def raw(port: int, path: str, **params) -> str:
    """A request as a third party would send it, with its own digest session."""
    r = httpx.get(f"http://127.0.0.1:{port}{path}", params=params, auth=httpx.DigestAuth(USER, PASSWORD),
                  timeout=5)
    r.raise_for_status()
    return r.text


def test_axis_zoom_units_map_linearly_to_magnification(emulators):
    assert zoom_to_units(1, 30) == 1 and zoom_to_units(30, 30) == 9999 and zoom_to_units(15.5, 30) == 5000
    assert units_to_zoom(1, 30) == 1 and units_to_zoom(9999, 30) == 30
    assert zoom_to_units(100, 30) == 9999 and zoom_to_units(0.5, 30) == 1  # clamped to the device
    emu = emulators["axis"]
    emu.reset()
    d = emu.driver()
    try:
        d.move_absolute(Pose(-90, 5, 5.5))  # max optical zoom = zoom_max = 10: 5.5x is unit 5000
        assert "zoom=5000\n" in raw(emu.port, "/axis-cgi/com/ptz.cgi", query="position", camera=1)
        d.move_relative(0, 0, 1.0)  # +1x is +1111 units (9998 / 9)
        assert "zoom=6111\n" in raw(emu.port, "/axis-cgi/com/ptz.cgi", query="position", camera=1)
    finally:
        d.close()


def test_axis_max_optical_zoom_sets_the_scale(emulators):
    emu = emulators["axis"]
    emu.reset()
    d = AxisDriver(driver_options("axis", emu.port, max_optical_zoom=20.0))  # says unit 9999 is 20x
    try:
        d.move_absolute(Pose(0, 0, 10))  # 10x on a 20x lens is unit 1 + 9/19 * 9998 = 4737 ...
        assert "zoom=4737\n" in raw(emu.port, "/axis-cgi/com/ptz.cgi", query="position", camera=1)
    finally:
        d.close()  # (... which this emulator, a 10x lens, shows as 5.3x: the mapping is the config's)


def test_hanwha_gets_its_0_360_frame_whatever_frame_is_configured(emulators):
    emu = emulators["hanwha"]
    emu.reset()
    options = driver_options("hanwha", emu.port)
    d = HanwhaDriver(DriverOptions(options.connection, PoseRanges(-180, 180, -30, 30, 1, 10), options.motion))
    try:
        assert close(d.move_absolute(Pose(-90, 0, 1)), Pose(-90, 0, 1))
        assert "Pan=270.00" in raw(emu.port, "/stw-cgi/ptzcontrol.cgi", msubmenu="query", action="view",
                                   Query="Pan,Tilt,Zoom")
        assert close(d.move_relative(-100, 0, 0), Pose(170, 0, 1))  # wraps in the configured frame
    finally:
        d.close()


def test_onvif_positions_use_the_generic_spaces(emulators):
    emu = emulators["onvif"]
    emu.reset()
    d = emu.driver()
    try:
        d.move_absolute(Pose(90, 15, 5.5))
        assert d._to_space(Pose(90, 15, 5.5)) == pytest.approx((-0.5, 0.5, 0.5))
        x, y, z = emu.app._to_space(emu.app.mechanics.pose())
        assert (x, y, z) == pytest.approx((-0.5, 0.5, 0.5), abs=1e-6)
        assert d.info().extra["profile"] == "profile_ptz"  # the profile with PTZ, not the first
    finally:
        d.close()


def test_onvif_behind_nat_with_a_skewed_clock(panorama):
    """The camera advertises an address we cannot reach and its clock is an hour fast."""
    config = EmulatorConfig(user=USER, password=SecretStr(PASSWORD), settle_s=0.02, width=64, height=48,
                            clock_offset_s=3600.0)
    app = build_emulator("onvif", make_world(panorama, RANGES["onvif"]), config,
                         advertised_host="192.0.2.1:8999")
    with ThreadedServer(app) as server:
        d = OnvifDriver(driver_options("onvif", server.port))
        try:
            assert close(d.move_absolute(Pose(45, -5, 2)), Pose(45, -5, 2))
            assert d.snapshot().image.shape == (48, 64, 3)
            assert d._clock_offset_s == pytest.approx(3600, abs=5)
        finally:
            d.close()
        # A token dated by our own clock is refused by this camera: the offset is what made it work.
        body = soap.envelope("<tptz:GetStatus><tptz:ProfileToken>profile_ptz</tptz:ProfileToken>"
                             "</tptz:GetStatus>",
                             soap.wsse_header(USER, PASSWORD, 0.0))
        r = httpx.post(f"{server.url}/onvif/ptz_service", content=body, timeout=5)
        assert r.status_code == 400 and "NotAuthorized" in r.text


def test_onvif_setup_faults(emulators):
    emu = emulators["onvif"]
    emu.reset()
    emu.app.faults.inject("error_body", "setup", times=1)  # the first discovery call is retried
    d = emu.driver()
    try:
        assert d.position() is not None
    finally:
        d.close()
    d = emu.driver(onvif_profile="nope")
    try:
        with pytest.raises(CameraBadResponse, match=r"no profile 'nope' .*profile_fixed, profile_ptz"):
            d.position()
    finally:
        d.close()
    emu.app.faults.inject("html_error", "setup", times=100)
    d = emu.driver()
    try:
        with pytest.raises(CameraBadResponse,
                           match="ONVIF GetCapabilities: HTTP 500 with an HTML error page"):
            d.position()
    finally:
        d.close()
        emu.reset()


def test_the_module_entry_serves_a_camera_with_the_password_from_a_file(tmp_path):
    port = free_port()
    secret = tmp_path / "camera-password"
    secret.write_text(PASSWORD + "\n")
    env = {"PATH": "/usr/bin:/bin", "PTZJEPA_DATA_DIR": str(tmp_path / "data"), "PTZJEPA_CAMERA__USER": USER}
    argv = [sys.executable, "-m", "services.camera.emulators", "hanwha", "--port", str(port),
            "--password-file", str(secret), "--settle", "0.05", "--width", "64", "--height", "48"]
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def up():
            try:
                reply = httpx.get(f"http://127.0.0.1:{port}/stw-cgi/ptzcontrol.cgi", timeout=1)
                return reply.status_code == 401
            except httpx.HTTPError:
                return proc.poll() is not None  # stop waiting if it died
        wait_for(up, 60, what="the emulator")
        assert proc.poll() is None, proc.stdout.read().decode()
        d = HanwhaDriver(driver_options("hanwha", port))
        try:
            assert close(d.move_absolute(Pose(12, 3, 2)), Pose(12, 3, 2))
        finally:
            d.close()
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0].decode()
    assert PASSWORD not in output and "emulated hanwha camera" in output


def test_the_module_entry_wants_a_password_and_never_from_argv(tmp_path, monkeypatch, capsys):
    from services.camera.emulators import __main__ as entry

    monkeypatch.setattr(entry, "setup_logging", lambda level: None)  # keep the test run's logging
    main = entry.main
    for key in ("PTZJEPA_CAMERA__PASSWORD", "PTZJEPA_CAMERA__PASSWORD_FILE", "PTZJEPA_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PTZJEPA_DATA_DIR", str(tmp_path))
    assert main(["axis", "--port", str(free_port())]) == 2
    assert "PTZJEPA_CAMERA__PASSWORD" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["axis", "--password", "x"])
    assert exit_.value.code == 2 and "unrecognized arguments: --password" in capsys.readouterr().err


def test_make_driver_checks_the_configuration_and_sends_nothing(tmp_path):
    port = free_port()  # nothing listens: building a driver must not touch the network
    for name, cls in (("hanwha", HanwhaDriver), ("axis", AxisDriver), ("onvif", OnvifDriver)):
        settings = make_settings(tmp_path, camera={"driver": name, "port": port, "password": "pw"})
        driver = make_driver(settings)
        assert isinstance(driver, cls) and driver.http.endpoint == f"http://127.0.0.1:{port}"
        driver.close()
    with pytest.raises(ConfigError, match=r"camera\.password"):
        make_driver(make_settings(tmp_path, camera={"driver": "axis"}))
    with pytest.raises(ConfigError, match="must span 360"):
        make_driver(make_settings(tmp_path, camera={"driver": "hanwha", "password": "pw", "pan_max": 300}))
    options = driver_options("axis", port, max_optical_zoom=8.0)  # zoom_max 10 > the lens's 8x
    with pytest.raises(ConfigError, match="max_optical_zoom"):
        options.check("axis")


def test_emulator_latency_is_added_to_every_request(panorama):
    config = EmulatorConfig(user=USER, password=SecretStr(PASSWORD), latency_s=0.05, settle_s=0.0)
    app = build_emulator("axis", make_world(panorama, RANGES["axis"]), config)
    with ThreadedServer(app) as server:
        d = AxisDriver(driver_options("axis", server.port))
        try:
            d.position()
            start = time.monotonic()
            d.position()
            assert time.monotonic() - start >= 0.05
        finally:
            d.close()
    assert EMULATOR.latency_s == 0  # the shared emulators stay fast
