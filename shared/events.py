"""Phase and model events on one Redis Stream, so a restarted service can catch up.

Entries are flat string maps (Redis stream fields); `data` carries a JSON object for anything
structured. The stream is capped (approximate MAXLEN) so it cannot grow without bound.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis
from redis.typing import EncodableT, FieldT

from shared.keys import Keys

STREAM_MAXLEN = 100_000


@dataclass(frozen=True)
class Event:
    id: str
    kind: str
    node: str
    time: float
    data: dict[str, Any]


def emit(client: redis.Redis, keys: Keys, kind: str, node: str, **data: Any) -> str:
    fields: dict[FieldT, EncodableT] = {"kind": kind, "node": node, "time": f"{time.time():.6f}",
              "data": json.dumps(data, default=str, sort_keys=True)}
    entry_id = client.xadd(keys.events(), fields, maxlen=STREAM_MAXLEN, approximate=True)
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def read_since(client: redis.Redis, keys: Keys, last_id: str = "0-0", count: int = 1000,
               block_ms: int | None = None) -> list[Event]:
    """Events after `last_id` (exclusive), oldest first."""
    reply = client.xread({keys.events(): last_id}, count=count, block=block_ms)
    # The clients speak RESP2 (redis-py's default): a list of [stream, entries] pairs, or None
    # when `block_ms` passes with nothing new.
    if reply is not None and not isinstance(reply, list):
        raise TypeError(f"expected a RESP2 stream reply, got {type(reply).__name__}")
    events = []
    for _stream, entries in reply or []:
        for entry_id, fields in entries:
            f = {_s(k): _s(v) for k, v in fields.items()}
            events.append(Event(id=_s(entry_id), kind=f.get("kind", ""), node=f.get("node", ""),
                                time=float(f.get("time", 0.0)), data=json.loads(f.get("data", "{}"))))
    return events


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
