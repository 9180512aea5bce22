"""Fixtures of the model tests: one torch thread (tiny networks run fastest on one)."""

from tests.support.tiny_models import one_thread  # noqa: F401  (an autouse fixture, found by name)
