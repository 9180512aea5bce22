"""The camera password never shows: not in a log line (ours, httpx's, httpcore's, uvicorn's, at
DEBUG), not in an exception or its traceback, not in a URL the camera received, not on stdout or
stderr, while every driver runs through every fault and a wrong password."""

from __future__ import annotations

import logging
import traceback

import pytest

from services.camera.drivers.base import CameraError
from services.camera.emulators.core import FAULT_KINDS
from shared.pose import Pose
from tests.camera.drivers.conftest import DRIVERS, PASSWORD

OPS = {"position": lambda d: d.position(), "move": lambda d: d.move_absolute(Pose(33, 3, 3)),
       "snapshot": lambda d: d.snapshot()}


@pytest.fixture
def all_logs(caplog):
    """caplog at DEBUG on the root logger, plus uvicorn's loggers, which do not propagate."""
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore"):  # whatever an earlier setup_logging() made of them
        caplog.set_level(logging.DEBUG, logger=name)
    extra = [logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access")]
    for logger in extra:
        logger.addHandler(caplog.handler)
    yield caplog
    for logger in extra:
        logger.removeHandler(caplog.handler)


def test_the_password_never_appears_anywhere(emulators, all_logs, capfd):
    errors: list[BaseException] = []
    for protocol in DRIVERS:
        emu = emulators[protocol]
        emu.reset()
        d = emu.driver(timeout_s=0.2, retries=1, sharpness_threshold=100.0, sharpness_retries=1)
        try:
            d.move_absolute(Pose(170, -24, 2.7))
            for kind in sorted(FAULT_KINDS):
                for op, call in OPS.items():
                    if op not in FAULT_KINDS[kind] or (kind == "timeout" and op != "position"):
                        continue  # timeouts are slow: one operation shows their messages
                    for times in (1, 5):  # ridden out, then lasting
                        emu.app.faults.inject(kind, op, times=times)
                        try:
                            call(d)
                        except CameraError as exc:
                            errors.append(exc)
                        emu.app.faults.clear()
        finally:
            d.close()
        wrong = emu.driver(password="wrong-" + PASSWORD[::-1])
        try:
            wrong.position()
        except CameraError as exc:
            errors.append(exc)
        finally:
            wrong.close()
        targets = list(emu.app.stats.targets)
        assert targets and not any(PASSWORD in t for t in targets)
        assert emu.app.stats.faults  # the faults really happened
    out, err = capfd.readouterr()
    assert len(errors) >= 3 * 5 and any("refused" in str(e) for e in errors)
    assert any(r.name.startswith("httpx") for r in all_logs.records)  # the capture really works
    assert any(r.name.startswith("services.camera.drivers") for r in all_logs.records)
    texts = [all_logs.text, out, err, *("".join(traceback.format_exception(e)) for e in errors),
             *(repr(e) for e in errors)]
    assert not [t for t in texts if PASSWORD in t]
