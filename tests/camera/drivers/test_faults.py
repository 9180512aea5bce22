"""Every injected fault, against every driver: a one-off fault is ridden out by a retry, a lasting
one becomes a typed error with a clear message, and nothing is repeated that must not be."""

from __future__ import annotations

import pytest

from services.camera.drivers.base import CameraBadResponse, CameraTimeout
from services.camera.drivers.http import CameraAuthError
from shared.pose import Pose
from tests.camera.drivers.test_contract import close

TARGET = Pose(30, 5, 2)


def run(driver, op: str):
    if op == "position":
        return driver.position()
    if op == "move":
        return driver.move_absolute(TARGET)
    return driver.snapshot()


ONE_OFF = [("timeout", "position"), ("timeout", "move"), ("timeout", "snapshot"),
           ("error_body", "position"), ("error_body", "move"), ("error_body", "snapshot"),
           ("html_error", "position"), ("html_error", "move"), ("html_error", "snapshot"),
           ("unauthorized", "position"), ("unauthorized", "move"), ("unauthorized", "snapshot"),
           ("truncated", "position"), ("truncated", "snapshot"),
           ("empty", "position"), ("empty", "snapshot"), ("garbage", "snapshot")]


@pytest.mark.parametrize("kind, op", ONE_OFF, ids=[f"{k}-{o}" for k, o in ONE_OFF])
def test_a_one_off_fault_is_ridden_out(emu, kind, op):
    d = emu.driver(timeout_s=0.2)
    try:
        d.position()  # an established session: ONVIF has discovered its services and the
        d.snapshot()  # digest challenge is answered; the fault hits the call under test only
        emu.app.faults.inject(kind, op, times=1)
        result = run(d, op)
    finally:
        d.close()
    assert emu.app.stats.faults[kind] >= 1 and not emu.app.faults._queue
    if op == "move":
        assert close(result, TARGET)
    elif op == "snapshot":
        assert result.image.shape == (96, 96, 3)


LASTING = [
    ("timeout", "position", CameraTimeout,
     r"no answer from http://127\.0\.0\.1:\d+ within 0\.2 s \(read timeout\)"),
    ("error_body", "move", CameraBadResponse, r"Driver is initiating\. Please try again later\."),
    ("error_body", "position", CameraBadResponse, r"Driver is initiating"),
    ("html_error", "snapshot", CameraBadResponse,
     r"HTTP 500 with an HTML error page '500 Internal Server Error'"),
    ("html_error", "position", CameraBadResponse, r"HTTP 500 with an HTML error page"),
    ("unauthorized", "move", CameraAuthError, r"refused user 'operator'"),
    ("truncated", "position", CameraBadResponse, r"was cut off"),
    ("truncated", "snapshot", CameraBadResponse, r"was cut off"),
    ("empty", "position", CameraBadResponse, r"empty reply"),
    ("empty", "snapshot", CameraBadResponse, r"not a JPEG"),
    ("garbage", "snapshot", CameraBadResponse, r"JPEG"),
]


@pytest.mark.parametrize("kind, op, error, message", LASTING, ids=[f"{k}-{o}" for k, o, *_ in LASTING])
def test_a_lasting_fault_becomes_a_typed_error(emu, kind, op, error, message):
    d = emu.driver(timeout_s=0.2)
    try:
        d.position()
        emu.app.faults.inject(kind, op, times=100)
        with pytest.raises(error, match=message) as caught:
            run(d, op)
    finally:
        d.close()
    text = str(caught.value)
    if error is CameraAuthError:
        assert "gave up" not in text  # refused credentials are final, not retried with backoff
    else:
        assert "gave up after 3 tries" in text  # retries=2: bounded, and said so
    assert text.split(":")[0].split()[0] in ("SUNAPI", "VAPIX", "ONVIF")  # names the call


def test_a_timed_out_relative_move_is_not_repeated(emu):
    d = emu.driver(timeout_s=0.2)
    try:
        d.move_absolute(Pose(10, 0, 1))
        emu.app.faults.inject("timeout", "move", times=1)
        moves = emu.app.stats.requests["move"]
        with pytest.raises(CameraTimeout, match="no answer"):
            d.move_relative(5, 0, 0)
        # the camera may have moved: say so, do not move twice
        assert emu.app.stats.requests["move"] - moves == 1
    finally:
        d.close()


def test_a_relative_move_refused_as_busy_is_retried_once_and_moves_once(emu, driver):
    driver.move_absolute(Pose(10, 0, 1))
    emu.app.faults.inject("error_body", "move", times=1)
    moves = emu.app.stats.requests["move"]
    reached = driver.move_relative(5, 0, 0)
    assert emu.app.stats.requests["move"] - moves == 2
    assert close(reached, Pose(15, 0, 1))  # not 20: the busy answer means the camera did nothing


def test_faults_while_polling_a_move_do_not_break_it(emu, driver):
    driver.move_absolute(Pose(10, 0, 1))
    emu.app.mechanics.settle_s = 0.2
    emu.app.faults.inject("error_body", "position", times=1)
    emu.app.faults.inject("truncated", "position", times=1)
    reached = driver.move_absolute(Pose(80, -10, 4))
    assert close(reached, Pose(80, -10, 4))
