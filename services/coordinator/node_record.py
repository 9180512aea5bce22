"""`<data_dir>/run/node.json`: which processes a running `ptzjepa up` owns, so a later one can tell
a live node of the same data directory from the leftovers of a dead one.

The record names the launcher (pid, start time in clock ticks since boot, command line), the
coordinator URL, every child (name, pid, start time, ports) and the embedded Redis server. A pid
alone proves nothing (pids are reused), so a process is taken for a recorded one only when its
start time matches; a process a child forked (its process group) is taken for ours only when its
environment names this data directory's run folder (`PTZJEPA_CONFIG`, which every child gets).
Nothing is killed without one of these proofs.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RECORD_NAME = "node.json"
CONFIG_VAR = b"PTZJEPA_CONFIG="


class NodeRunning(RuntimeError):
    """A live launcher already runs a node of this data directory."""


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    start_ticks: int
    pgid: int
    zombie: bool


def record_path(data_dir: Path) -> Path:
    return Path(data_dir) / "run" / RECORD_NAME


def process_info(pid: int) -> ProcessInfo | None:
    """What /proc says about `pid`, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    # The command name (field 2) may hold spaces and parentheses: the fields after its last ")"
    # start at field 3 (state); field 5 is the process group, field 22 the start time.
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return ProcessInfo(pid, int(fields[19]), int(fields[2]), fields[0] == "Z")
    except (IndexError, ValueError):
        return None


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def same_process(pid: int, start_ticks: int | None) -> bool:
    """`pid` is alive (not a zombie) and is the process that started at `start_ticks`."""
    info = process_info(pid)
    return info is not None and not info.zombie and start_ticks is not None \
        and info.start_ticks == start_ticks


def runs_for(pid: int, run_dir: Path) -> bool:
    """`pid`'s environment names a settings file under `run_dir` (a child of ours, or its fork)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    for entry in environ.split(b"\0"):
        if entry.startswith(CONFIG_VAR):
            value = Path(entry[len(CONFIG_VAR):].decode(errors="replace"))
            return value.is_relative_to(run_dir)
    return False


def process_entry(pid: int) -> dict[str, Any]:
    info = process_info(pid)
    return {"pid": pid, "start_ticks": info.start_ticks if info else None}


def write_record(data_dir: Path, record: dict[str, Any]) -> None:
    """Write the record atomically: a reader sees the old file or the new one, never half."""
    path = record_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    os.replace(tmp, path)


def read_record(data_dir: Path) -> dict[str, Any] | None:
    path = record_path(data_dir)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring the unreadable node record %s: %s", path, exc)
        return None
    return record if isinstance(record, dict) else None


def delete_record(data_dir: Path, launcher_pid: int) -> None:
    """Remove the record if it is still this launcher's (a newer node may have replaced it)."""
    record = read_record(data_dir)
    if record is not None and record.get("launcher", {}).get("pid") == launcher_pid:
        record_path(data_dir).unlink(missing_ok=True)


def live_launcher(record: dict[str, Any]) -> int | None:
    """The pid of the recorded launcher if that very process still runs, else None."""
    launcher = record.get("launcher") or {}
    pid = launcher.get("pid")
    if not isinstance(pid, int):
        return None
    if not same_process(pid, launcher.get("start_ticks")):
        return None
    return pid if cmdline(pid) == launcher.get("cmdline") else None


def group_members(pgid: int) -> list[int]:
    members = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = process_info(int(name))
            if info is not None and info.pgid == pgid and not info.zombie:
                members.append(info.pid)
    return members


def _orphans(record: dict[str, Any], run_dir: Path) -> dict[int, str]:
    """Live processes of the record's children (each child's own process group), pid -> name."""
    found: dict[int, str] = {}
    for child in record.get("children") or []:
        pid, name = child.get("pid"), str(child.get("name", "?"))
        if not isinstance(pid, int) or pid <= 1:
            continue
        leader_ours = same_process(pid, child.get("start_ticks"))
        for member in group_members(pid):
            if (member == pid and leader_ours) or runs_for(member, run_dir):
                found[member] = name if member == pid else f"{name} (forked by it)"
    return found


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    left = list(pids)
    while left and time.monotonic() < deadline:
        left = [p for p in left if (i := process_info(p)) is not None and not i.zombie]
        if left:
            time.sleep(0.05)
    return left


def _stop_recorded_redis(record: dict[str, Any]) -> list[str]:
    redis_entry = record.get("redis") or {}
    pid = redis_entry.get("pid")
    if not isinstance(pid, int) or not same_process(pid, redis_entry.get("start_ticks")):
        return []
    if not any("redis-server" in part for part in cmdline(pid)):
        return []
    os.kill(pid, signal.SIGTERM)  # redis-server saves its data on SIGTERM, then exits
    if _wait_gone([pid], 10.0):
        os.kill(pid, signal.SIGKILL)
        _wait_gone([pid], 2.0)
        return [f"embedded redis-server (pid {pid}) did not stop on SIGTERM: killed"]
    return [f"stopped the embedded redis-server left running (pid {pid})"]


def clear_stale_node(data_dir: Path) -> list[str]:
    """Check the record of `data_dir`'s last node before starting a new one.

    Raises NodeRunning when its launcher still runs. Otherwise kills what its children left alive
    (verified as described in the module docstring) and returns one line per thing done.
    """
    data_dir = Path(data_dir).resolve()
    record = read_record(data_dir)
    if record is None:
        return []
    pid = live_launcher(record)
    if pid is not None:
        url = record.get("coordinator_url", "?")
        raise NodeRunning(f"a node of {data_dir} is already running: launcher pid {pid}, coordinator "
                          f"{url}; stop it with `ptzjepa down --data-dir {data_dir}` (or `kill {pid}`)")
    launcher_pid = (record.get("launcher") or {}).get("pid")
    orphans = _orphans(record, data_dir / "run")
    done = [f"the last node's launcher (pid {launcher_pid}) is gone"] if orphans else []
    for victim, name in sorted(orphans.items()):
        try:
            os.kill(victim, signal.SIGKILL)
            done.append(f"killed {name} (pid {victim}), left running by it")
        except ProcessLookupError:
            pass
    left = _wait_gone(list(orphans), 5.0)
    if left:
        done.append(f"still alive after SIGKILL: pids {left}")
    done += _stop_recorded_redis(record)
    for line in done:
        log.warning("stale node: %s", line)
    record_path(data_dir).unlink(missing_ok=True)
    return done
