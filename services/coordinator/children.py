"""The supervised processes of a node as Redis records: written by `ptzjepa up`'s supervisor, read
by the coordinator's /metrics and status page.

One hash per node (`Keys.node_children`), one field per child holding a JSON object:
`state` (running | restarting | gave_up | stopped), `pid`, `restarts` (since the node started),
`last_exit` (how it last ended, e.g. "signal 9 (SIGKILL)" or "exit code 1"; null before), `since`
(epoch seconds of the state's start).
"""

from __future__ import annotations

import json
import logging
import signal
from typing import Any

import redis

from shared.keys import Keys
from shared.metrics import CHILD_RESTARTS, CHILD_UP

log = logging.getLogger(__name__)

STATES = ("running", "restarting", "gave_up", "stopped")


def describe_exit(code: int) -> str:
    """A Popen return code in words: negative codes are the signal that ended the process."""
    if code < 0:
        try:
            return f"signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def child_record(state: str, pid: int | None, restarts: int, last_exit: str | None,
                 since: float) -> dict[str, Any]:
    if state not in STATES:
        raise ValueError(f"unknown child state '{state}', expected one of {STATES}")
    return {"state": state, "pid": pid, "restarts": restarts, "last_exit": last_exit, "since": since}


def read_children(client: redis.Redis, keys: Keys, node: str) -> list[dict[str, Any]]:
    """The node's supervised processes, by name; empty when no launcher supervises it."""
    out = []
    for name, raw in sorted(client.hgetall(keys.node_children(node)).items()):
        name = name.decode() if isinstance(name, bytes) else name
        try:
            record = json.loads(raw)
        except ValueError:
            log.warning("unreadable record of child %s of node %s", name, node)
            continue
        if isinstance(record, dict):
            out.append({"name": name, **{k: record.get(k) for k in
                                         ("state", "pid", "restarts", "last_exit", "since")}})
    return out


def export_child_metrics(client: redis.Redis, keys: Keys, node: str) -> None:
    """Set `ptzjepa_child_up` and `ptzjepa_child_restarts` from the node's records."""
    for child in read_children(client, keys, node):
        CHILD_UP.labels(node, child["name"]).set(1 if child["state"] == "running" else 0)
        CHILD_RESTARTS.labels(node, child["name"]).set(int(child["restarts"] or 0))
