"""What a report reads: frames (manifests), world-model versions, agents and cycles.

Everything comes from the store; Redis adds the cycle records (ids, status, phase timings) where it
is reachable. Without Redis, cycles are inferred from the store: every collection or navigation run
(the rounds `<run>-rNNN` of one job) starts a cycle, and the world-model versions and agents made
before the next run belong to it. What could not be read is collected in `notes`, and the report
shows them, so a partial report says what it is missing instead of failing.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shared.schemas import FrameRecord
from shared.store import Store, StoreError

T = TypeVar("T")

log = logging.getLogger(__name__)

_ROUND_SUFFIX = re.compile(r"-r\d+$")


def run_of(round_id: str) -> str:
    """The collection/navigation run a round belongs to (`sweep-ab12cd34-r003` -> `sweep-ab12cd34`)."""
    return _ROUND_SUFFIX.sub("", round_id)


@dataclass
class Cycle:
    index: int  # 1-based, in time order (0: what came before the first recorded cycle)
    id: str
    start: float
    end: float | None = None  # the next cycle's start (or the record's end)
    status: str = "inferred"
    source: str = "store"  # "redis" (a cycle record) or "store" (inferred)
    phases: list[dict] = field(default_factory=list)
    rounds: list[str] = field(default_factory=list)
    versions: list[dict] = field(default_factory=list)  # world-model metadata, oldest first
    agents: list[dict] = field(default_factory=list)  # agent records, oldest first

    @property
    def label(self) -> str:
        return f"c{self.index}"

    def contains(self, t: float) -> bool:
        return t >= self.start and (self.end is None or t < self.end)


@dataclass
class ReportData:
    node: str
    rounds: dict[str, list[FrameRecord]]  # round id -> frames in step order (selected cycles)
    versions: list[dict]  # world-model metadata of this node's versions (selected), by finish time
    agents: list[dict]  # this node's agent records (selected), by training time
    cycles: list[Cycle]  # the selected cycles
    all_cycles: int
    notes: list[str] = field(default_factory=list)
    cycle_source: str = "store"

    @property
    def frames(self) -> list[FrameRecord]:
        return [r for records in self.rounds.values() for r in records]

    def cycle_of(self, t: float) -> Cycle | None:
        for cycle in self.cycles:
            if cycle.contains(t):
                return cycle
        return None


# ---- the store --------------------------------------------------------------------------------
def _read_each(rels: list[str], read: Callable[[str], T]) -> tuple[list[T], list[str]]:
    """`read` of every file that can be read, and the errors of those that cannot."""
    values: list[T] = []
    bad: list[str] = []
    for rel in rels:
        try:
            values.append(read(rel))
        except StoreError as exc:
            bad.append(str(exc))
    return values, bad


def read_rounds(store: Store, node: str, notes: list[str]) -> dict[str, list[FrameRecord]]:
    rounds: dict[str, list[FrameRecord]] = {}
    manifests, bad = _read_each(store.list(f"manifests/{node}", ".jsonl"), store.read_manifest)
    for records in manifests:
        if records:
            rounds[records[0].round_id] = sorted(records, key=lambda r: r.step)
    if bad:
        notes.append(f"{len(bad)} manifest(s) could not be read and are left out, e.g. {bad[0]}")
    return dict(sorted(rounds.items(), key=lambda kv: (kv[1][0].captured_at.timestamp(), kv[0])))


def read_versions(store: Store, notes: list[str]) -> list[dict]:
    """Metadata of every published world-model version in the store (any node), by finish time."""
    read, bad = _read_each(store.list("models", ".json"), store.read_json)
    metas = [meta for meta in read if isinstance(meta, dict) and meta.get("version") and meta.get("slot")]
    if bad:
        notes.append(f"{len(bad)} world-model metadata file(s) could not be read, e.g. {bad[0]}")
    return sorted(metas, key=lambda m: (float(m.get("finished_at") or 0.0), m["version"]))


def read_agents(store: Store, node: str, notes: list[str]) -> list[dict]:
    read, bad = _read_each(store.list(f"agents/{node}", ".json"), store.read_json)
    records = [rec for rec in read if isinstance(rec, dict) and rec.get("sha256")]
    if bad:
        notes.append(f"{len(bad)} agent record(s) could not be read, e.g. {bad[0]}")
    return sorted(records, key=lambda r: float(r.get("trained_at") or 0.0))


# ---- cycles -----------------------------------------------------------------------------------
def cycles_from_redis(client, prefix: str, node: str) -> list[Cycle]:
    from shared import cycles as cycle_records
    from shared.keys import Keys

    views = cycle_records.list_cycles(client, Keys(prefix), node, limit=100_000)
    views.sort(key=lambda v: v["created_at"])
    out = []
    for i, view in enumerate(views, 1):
        out.append(Cycle(index=i, id=view["id"], start=float(view["created_at"]),
                         status=view["status"], source="redis", phases=view["phases"]))
    return out


def cycles_from_store(rounds: dict[str, list[FrameRecord]], versions: list[dict]) -> list[Cycle]:
    """One cycle per collection/navigation run, in time order. A run id seen again after a world
    model of this node was published in between starts a new cycle too (run ids need not be
    unique across cycles)."""
    finished = sorted(float(m.get("finished_at") or 0.0) for m in versions)
    out: list[Cycle] = []
    last_run, last_t = None, None
    for round_id, records in rounds.items():  # already in time order
        run = run_of(round_id)
        t = records[0].captured_at.timestamp()
        published_between = last_t is not None and any(last_t < f <= t for f in finished)
        if run != last_run or published_between:
            out.append(Cycle(index=len(out) + 1, id=run, start=t))
        last_run, last_t = run, t
    return out


def _close_windows(cycles: list[Cycle]) -> None:
    for a, b in itertools.pairwise(cycles):
        a.end = b.start


def assign(cycles: list[Cycle], rounds: dict[str, list[FrameRecord]], versions: list[dict],
           agents: list[dict]) -> Cycle | None:
    """Put rounds, versions and agents into the cycle whose window holds their time.

    Anything older than the first cycle goes to a cycle 0 ("before"), returned when needed.
    """
    _close_windows(cycles)
    first = cycles[0].start if cycles else float("inf")
    before = Cycle(index=0, id="before-first-cycle", start=float("-inf"), end=first,
                   status="before the first recorded cycle")

    def home(t: float) -> Cycle:
        for c in cycles:
            if c.contains(t):
                return c
        return before

    for round_id, records in rounds.items():
        home(records[0].captured_at.timestamp()).rounds.append(round_id)
    for meta in versions:
        home(float(meta.get("started_at") or meta.get("finished_at") or 0.0)).versions.append(meta)
    for rec in agents:
        home(float(rec.get("trained_at") or 0.0)).agents.append(rec)
    return before if (before.rounds or before.versions or before.agents) else None


def parse_cycle_range(text: str | None) -> tuple[int | None, int | None]:
    """`A:B` (1-based, both ends included), `A:`, `:B` or `A` -> (first, last); None: all."""
    if text is None or not text.strip():
        return None, None
    text = text.strip()
    m = re.fullmatch(r"(\d*)\s*:\s*(\d*)", text) or re.fullmatch(r"(\d+)()", text)
    if not m:
        raise ValueError(f"--cycles '{text}': expected A:B, A:, :B or A (cycle numbers from 1)")
    a = int(m.group(1)) if m.group(1) else None
    b = int(m.group(2)) if m.group(2) else (a if ":" not in text else None)
    if (a is not None and a < 0) or (b is not None and b < 0) or (a and b and b < a):
        raise ValueError(f"--cycles '{text}': the range is empty")
    return a, b


def published_versions(client, prefix: str, store: Store, slots: list[str]) -> set[str]:
    """Every version in the published lineage of `slots` (each slot's latest record in Redis and
    its ancestors). A version whose publication the lease fencing refused has files in the store
    but is in no lineage."""
    from shared import versions as wm_versions
    from shared.keys import Keys
    from shared.leases import LeaseManager

    manager = LeaseManager(client, Keys(prefix), "report")
    out: set[str] = set()
    for slot in slots:
        record = manager.latest(slot)
        if record:
            out |= {m["version"] for m in wm_versions.history(store, slot, record["version"])}
    return out


def gather(store: Store, node: str, *, redis_client=None, redis_prefix: str = "ptzjepa",
           redis_problem: str | None = None, cycle_range: str | None = None,
           slots: list[str] | None = None) -> ReportData:
    notes: list[str] = []
    rounds = read_rounds(store, node, notes)
    versions = [m for m in read_versions(store, notes) if m.get("node") == node]
    if redis_client is not None and slots:
        try:
            published = published_versions(redis_client, redis_prefix, store, slots)
            refused = [m for m in versions if m["version"] not in published]
            if refused:
                notes.append(f"{len(refused)} world-model version(s) of node {node} in the store were "
                             f"never published (the lease fencing refused them) and are left out")
                versions = [m for m in versions if m["version"] in published]
        except Exception as exc:
            notes.append(f"the published lineage could not be read ({type(exc).__name__}: {exc}); "
                         f"every version in the store is shown")
    agents = read_agents(store, node, notes)
    cycles: list[Cycle] = []
    source = "store"
    if redis_client is not None:
        try:
            cycles = cycles_from_redis(redis_client, redis_prefix, node)
            source = "redis"
        except Exception as exc:
            notes.append(f"cycle records could not be read from Redis ({type(exc).__name__}: {exc}); "
                         f"cycles are inferred from the store")
        if source == "redis" and not cycles:
            notes.append("Redis holds no cycle records for this node; cycles are inferred from the "
                         "store (one per collection or navigation run)")
            source = "store"
    else:
        notes.append(f"Redis is not available ({redis_problem or 'not configured'}): cycle records "
                     f"(ids, status, phase timings) are missing; cycles are inferred from the store "
                     f"(one per collection or navigation run)")
    if source == "store":
        cycles = cycles_from_store(rounds, versions)
    before = assign(cycles, rounds, versions, agents)
    if before is not None:
        cycles = [before, *cycles]
    total = len([c for c in cycles if c.index > 0])
    first, last = parse_cycle_range(cycle_range)
    if first is not None or last is not None:
        lo = first if first is not None else 0
        hi = last if last is not None else total
        selected = [c for c in cycles if lo <= c.index <= hi]
        if not selected:
            raise ValueError(f"--cycles {cycle_range}: this node has {total} cycle(s)")
        cycles = selected
    keep_rounds = {r for c in cycles for r in c.rounds}
    keep_versions = {m["version"] for c in cycles for m in c.versions}
    keep_agents = {a["sha256"] for c in cycles for a in c.agents}
    data = ReportData(node=node,
                      rounds={k: v for k, v in rounds.items() if k in keep_rounds},
                      versions=[m for m in versions if m["version"] in keep_versions],
                      agents=[a for a in agents if a["sha256"] in keep_agents],
                      cycles=cycles, all_cycles=total, notes=notes, cycle_source=source)
    if not rounds:
        notes.append(f"no frames of node {node} in the store: nothing to map, episode or embed")
    if not versions:
        notes.append(f"no world-model version trained by node {node} in the store: no loss curves "
                     f"and no world-model errors")
    if not agents:
        notes.append(f"no agent of node {node} in the store: no agent losses")
    return data


def summary(data: ReportData) -> dict[str, Any]:
    frames = data.frames
    by_source: dict[str, int] = {}
    for r in frames:
        by_source[r.source] = by_source.get(r.source, 0) + 1
    return {"node": data.node, "cycles": len([c for c in data.cycles if c.index > 0]),
            "cycles_total": data.all_cycles, "cycle_source": data.cycle_source,
            "rounds": len(data.rounds), "frames": len(frames), "frames_by_source": by_source,
            "versions": len(data.versions), "agents": len(data.agents)}
