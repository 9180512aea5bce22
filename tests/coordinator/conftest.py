"""Fixtures shared by the coordinator's tests: `two_cycles`, a recorded run of two whole cycles."""

from tests.coordinator.report.run import two_cycles

__all__ = ["two_cycles"]
