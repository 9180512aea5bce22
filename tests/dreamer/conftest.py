"""Fixtures of the dreamer tests: tiny real world models, one torch thread."""

from tests.support.tiny_models import one_thread, tiny_config, tiny_wm  # noqa: F401
