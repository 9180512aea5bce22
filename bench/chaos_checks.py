"""The outcome checks of the chaos benchmark (bench/chaos.py), read from the store and Redis.

- cycles: every cycle ended `finished`, or `failed`/`stopped` with a reason; a cycle still
  `running` past its bound is stuck (the bound: `STUCK_AFTER_S` plus the cycle budget, counted from
  the later of the cycle's start and the last fault that hit it);
- versions: every world-model version in the store (`models/<slot>/<version>.json`) has a sharing
  checkpoint whose sha256 is its name and a resume checkpoint matching the metadata's hash, and
  every slot's published record names such a version;
- frames: every line of every manifest names a frame that exists and decodes as an image;
- leases: no slot is held by a holder whose process is gone (dead) or, on this host, by a process
  that outlived the node's workers (an orphan adopted by init).
"""

from __future__ import annotations

import socket
from typing import Any

import redis

from bench.chaos_faults import Fault
from shared import versions
from shared.keys import Keys
from shared.leases import LeaseManager
from shared.process_state import alive
from shared.store import Store

STUCK_AFTER_S = 60.0
ENDED = ("finished", "failed", "stopped")
MAX_LISTED = 10  # examples kept per problem in the JSON


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))], 3)


def cycle_bound(view: dict[str, Any], faults: list[Fault], budget_s: float) -> float:
    """Epoch seconds after which a cycle still running counts as stuck."""
    hits = [f.at for f in faults if f.cycle == view["id"]]
    return max([view["created_at"], *hits]) + STUCK_AFTER_S + budget_s


def cycle_summary(views: list[dict[str, Any]], faults: list[Fault], budget_s: float,
                  now: float) -> dict[str, Any]:
    """Counts by status, the stuck cycles and those that failed without a reason."""
    by_status: dict[str, int] = {}
    stuck, unexplained = [], []
    for view in views:
        by_status[view["status"]] = by_status.get(view["status"], 0) + 1
        if view["status"] not in ENDED and now > cycle_bound(view, faults, budget_s):
            running = [p["name"] + ":" + str(p.get("status")) for p in view["phases"]
                       if p.get("status") not in ("finished", "canceled")]
            stuck.append({"id": view["id"], "phases": running})
        elif view["status"] in ("failed", "stopped") and not view.get("reason"):
            unexplained.append(view["id"])
    return {"cycles": len(views), "cycles_by_status": by_status, "cycles_stuck": len(stuck),
            "stuck": stuck[:MAX_LISTED], "cycles_unexplained": len(unexplained),
            "unexplained": unexplained[:MAX_LISTED]}


def fault_to_end(faults: list[Fault], views: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Sets each fault's time to the end of the cycle it hit; p50 and max over those that ended."""
    spans = []
    for fault in faults:
        view = views.get(fault.cycle or "")
        if view and view.get("ended_at"):
            fault.fault_to_end_s = round(max(0.0, view["ended_at"] - fault.at), 3)
            spans.append(fault.fault_to_end_s)
    return {"p50": percentile(spans, 50), "max": round(max(spans), 3) if spans else None,
            "n": len(spans)}


def check_versions(store: Store, leases: LeaseManager, slots: list[str]) -> dict[str, Any]:
    corrupt: list[str] = []
    stored = [rel for rel in store.list("models", ".json") if rel.count("/") == 2]
    for rel in stored:
        _, slot, name = rel.split("/")
        version = name.removesuffix(".json")
        try:
            versions.read_meta(store, slot, version)
            versions.read_share(store, slot, version)   # sha256 must be the version's name
            versions.read_resume(store, slot, version)  # sha256 must match the metadata
        except Exception as exc:  # any unreadable version is what this check reports
            corrupt.append(f"{rel}: {exc}")
    published = 0
    for slot in slots:
        record = leases.latest(slot)
        if record is None:
            continue
        published += 1
        if not store.exists(versions.VersionFiles(slot, record["version"]).meta):
            corrupt.append(f"{slot}: published version {record['version'][:12]}... has no files")
    return {"versions": len(stored), "published_slots": published, "corrupt_versions": len(corrupt),
            "corrupt": corrupt[:MAX_LISTED]}


def check_frames(store: Store) -> dict[str, Any]:
    lost: list[str] = []
    frames = 0
    manifests = store.list("manifests", ".jsonl")
    for rel in manifests:
        try:
            records = store.read_manifest(rel)
        except Exception as exc:  # an unreadable manifest loses every frame it listed
            lost.append(f"{rel}: {exc}")
            continue
        for record in records:
            frames += 1
            try:
                store.read_image(record.path)
            except Exception as exc:  # missing or not an image
                lost.append(f"{rel}: {record.path}: {exc}")
    return {"manifests": len(manifests), "frames": frames, "frames_lost": len(lost),
            "lost": lost[:MAX_LISTED]}


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[-1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def check_holders(client: redis.Redis, keys: Keys, slots: list[str]) -> dict[str, Any]:
    """Holders of the world-model slots whose process is gone (dead) or adopted by init (orphan)."""
    here = socket.gethostname()
    dead, orphans, held = [], [], []
    for slot, info in LeaseManager(client, keys, "chaos-check").holders(slots).items():
        if info is None:
            continue
        held.append(slot)
        pid, host = info.get("pid"), info.get("host")
        if host != here or not isinstance(pid, int):
            continue
        if not alive(pid):
            dead.append(f"{slot}: pid {pid} ({info.get('ttl_ms')} ms left)")
        elif _parent(pid) == 1:
            orphans.append(f"{slot}: pid {pid} has parent 1")
    return {"leases_held": held, "dead_holders": len(dead), "orphan_holders": len(orphans),
            "holders": (dead + orphans)[:MAX_LISTED]}


def failures(result: dict[str, Any]) -> list[str]:
    """The checks that failed, in words (empty when the run passed)."""
    out = []
    for name in ("cycles_stuck", "cycles_unexplained", "corrupt_versions", "frames_lost",
                 "dead_holders", "orphan_holders", "orphans"):
        if result.get(name):
            out.append(f"{name}={result[name]}")
    if result.get("children_not_back"):
        out.append(f"children not back: {', '.join(result['children_not_back'])}")
    if not result.get("cycles"):
        out.append("no cycle ran")
    if result.get("faults", 0) < result.get("config", {}).get("kills", 0):
        out.append(f"only {result.get('faults')} of {result['config']['kills']} faults were struck")
    return out
