"""Reaching Redis from an offline tool (`ptzjepa report`, `export-embeddings`), quickly or not at all.

The configured `redis_url` is tried once with short timeouts; without one, a node started with
`ptzjepa up` on this data folder is found through its embedded server's files
(`<data_dir>/redis/`: its unix socket and its password file). When neither answers, the
caller works from the store alone and says so.
"""

from __future__ import annotations

from pathlib import Path

import redis

from shared.config import Settings
from shared.redis import embedded_location, redacted


def open_redis(settings: Settings, timeout_s: float = 2.0) -> tuple[redis.Redis | None, str | None]:
    """(client, None) when Redis answers, else (None, why not)."""
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    if settings.redis_url:
        url, where = settings.redis_url, redacted(settings.redis_url)
    else:
        location = embedded_location(Path(settings.data_dir))
        if location is None:
            return None, ("no Redis URL is configured and no embedded node is running on "
                          f"{settings.data_dir}")
        url, stored = location
        password = password or stored
        where = f"the embedded Redis of {settings.data_dir}"
    try:
        client = redis.Redis.from_url(url, password=password, socket_connect_timeout=timeout_s,
                                      socket_timeout=max(timeout_s, 10.0))
        client.ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        return None, f"cannot reach {where}: {type(exc).__name__}"
    return client, None
