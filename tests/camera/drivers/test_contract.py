"""The behaviour every real-camera driver promises, one suite run against each emulated camera
(hanwha, axis, onvif) over real HTTP with digest auth."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from services.camera.drivers.base import CameraError, CameraTimeout
from services.camera.drivers.http import CameraAuthError
from services.camera.drivers.ptz import pan_distance, sharpness
from shared.pose import Pose
from tests.camera.drivers.conftest import PASSWORD, RANGES
from tests.support.servers import free_port


def close(a: Pose, b: Pose, deg: float = 0.02, zoom: float = 0.005) -> bool:
    return pan_distance(a.pan, b.pan) <= deg and abs(a.tilt - b.tilt) <= deg and abs(a.zoom - b.zoom) <= zoom


def test_absolute_move_waits_until_the_camera_has_settled(emu, driver):
    driver.move_absolute(Pose(100, 0, 1))
    polls = emu.app.stats.requests["position"]
    start = time.monotonic()
    reached = driver.move_absolute(Pose(120, 10, 3))
    assert time.monotonic() - start >= 0.8 * emu.app.mechanics.settle_s  # it waited for the motors
    assert emu.app.stats.requests["position"] - polls >= 3  # start + intermediate readings + settled
    assert close(reached, Pose(120, 10, 3))
    assert not emu.app.mechanics.moving()
    assert close(driver.position(), Pose(120, 10, 3))


def test_moves_stay_in_the_configured_frame_and_ranges(emu, driver):
    r = RANGES[emu.protocol]
    reached = driver.move_absolute(Pose(350, 10, 2))  # Axis is configured -180..180: 350 is -10
    assert close(reached, r.apply(Pose(350, 10, 2)))
    assert r.check(reached) == []
    reached = driver.move_relative(20, 50, 0)  # pan wraps past the end, tilt clamps at the top
    assert close(reached, r.apply(Pose(10, 30, 2)))
    assert r.check(reached) == [] and reached.tilt == 30
    reached = driver.move_relative(0, -5, 100)  # zoom clamps at zoom_max
    assert close(reached, Pose(10, 25, 10)) and reached.zoom == 10


def test_relative_zoom_is_in_magnification(emu, driver):
    driver.move_absolute(Pose(40, 0, 2))
    assert close(driver.move_relative(-3, 2, 1.5), Pose(37, 2, 3.5))
    assert close(driver.move_relative(0, 0, -2.5), Pose(37, 2, 1.0))


def test_snapshot_is_an_rgb_frame_with_its_pose(emu, driver):
    driver.move_absolute(Pose(170, -24, 2.7))
    snap = driver.snapshot()
    assert snap.image.shape == (96, 96, 3) and snap.image.dtype == np.uint8
    assert close(snap.pose, Pose(170, -24, 2.7))
    assert snap.captured_at.tzinfo is not None and snap.dynamic_fraction is None
    expected = emu.app.mechanics.sim.world.render(snap.pose, emu.app.mechanics.sim.now(), 96, 96)
    assert np.abs(snap.image.astype(int) - expected.astype(int)).mean() < 12  # the same view (JPEG)
    info = driver.info()
    assert info.driver == emu.protocol and info.ranges == RANGES[emu.protocol]
    assert (info.image_width, info.image_height) == (96, 96)
    assert PASSWORD not in repr(info)


def test_one_digest_challenge_per_session(emu):
    before = emu.app.stats.challenges
    d = emu.driver()
    try:
        d.move_absolute(Pose(60, 0, 1))
        for _ in range(3):
            d.position()
            d.snapshot()
        d.move_relative(5, 0, 0)
    finally:
        d.close()
    assert emu.app.stats.challenges - before == 1  # the auth state is reused, not a 401 per call
    assert emu.app.stats.auth_failures == 0


def test_wrong_password_is_an_auth_error_at_once(emu):
    d = emu.driver(password="not-the-password")
    failures = emu.app.stats.auth_failures
    start = time.monotonic()
    try:
        with pytest.raises(CameraAuthError) as caught:
            d.position()
        with pytest.raises(CameraAuthError):
            d.snapshot()
    finally:
        d.close()
    message = str(caught.value)
    assert "operator" in message and "not-the-password" not in message and PASSWORD not in message
    assert "gave up" not in message  # refused credentials are not retried with backoff
    assert emu.app.stats.auth_failures - failures >= 1
    assert time.monotonic() - start < 1.0


def test_a_camera_that_is_not_there_fails_clearly_after_retries():
    from services.camera.drivers import driver_class
    from tests.camera.drivers.conftest import driver_options

    for protocol in ("hanwha", "axis", "onvif"):
        d = driver_class(protocol)(driver_options(protocol, free_port()))
        with pytest.raises(CameraError,
                           match=r"cannot connect to http://127\.0\.0\.1:\d+.*gave up after 3 tries"):
            d.position()
        d.close()


def test_a_move_that_never_settles_times_out_with_where_it_got(emu):
    emu.app.mechanics.settle_s = 5.0
    d = emu.driver(settle_timeout_s=0.3)
    try:
        with pytest.raises(CameraTimeout, match=r"did not settle within 0\.3 s; last position \(pan"):
            d.move_absolute(Pose(200, 20, 5))
    finally:
        d.close()


def test_a_camera_stopping_short_of_the_target_is_accepted_with_a_warning(emu, caplog):
    # The camera's own limits are narrower than the configured ones: it stops early.
    d = emu.driver(settle_timeout_s=1.0)
    emu.app.mechanics.move_to(Pose(50, 0, 1))
    original = emu.app.mechanics.move_to
    emu.app.mechanics.move_to = lambda target: original(Pose(target.pan, min(target.tilt, 12.0), target.zoom))
    try:
        with caplog.at_level(logging.WARNING, "services.camera.drivers.ptz"):
            reached = d.move_absolute(Pose(50, 25, 1))
    finally:
        emu.app.mechanics.move_to = original
        d.close()
    assert close(reached, Pose(50, 12, 1))
    assert "short of the target" in caplog.text


def test_blurred_frames_after_a_move_are_retaken_until_sharp(emu):
    d = emu.driver(sharpness_threshold=100.0, sharpness_retries=3)
    try:
        d.move_absolute(Pose(170, -24, 2.7))  # a textured view (Laplacian variance in the hundreds)
        emu.app.faults.inject("blur", "snapshot", times=2)
        before = emu.app.stats.requests["snapshot"]
        snap = d.snapshot()
        assert emu.app.stats.requests["snapshot"] - before == 3
        assert sharpness(snap.image) >= 100.0
        before = emu.app.stats.requests["snapshot"]
        d.snapshot()  # no move since: no check, one frame
        assert emu.app.stats.requests["snapshot"] - before == 1
    finally:
        d.close()


def test_the_blur_check_is_bounded_and_keeps_the_sharpest(emu, caplog):
    d = emu.driver(sharpness_threshold=1e9, sharpness_retries=2)  # nothing is ever that sharp
    try:
        d.move_absolute(Pose(170, -24, 2.7))
        emu.app.faults.inject("blur", "snapshot", times=2)
        before = emu.app.stats.requests["snapshot"]
        with caplog.at_level(logging.WARNING, "services.camera.drivers.ptz"):
            snap = d.snapshot()
    finally:
        d.close()
    assert emu.app.stats.requests["snapshot"] - before == 3  # 1 + sharpness_retries, no more
    assert sharpness(snap.image) > 100.0  # the one unblurred frame won
    assert "keeping the sharpest" in caplog.text
