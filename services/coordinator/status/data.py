"""What the status page shows, read from Redis and the store without changing either.

- nodes: every node that left a trace in Redis (`<prefix>:node:<node>:...` keys: cycles, lifelong
  state, agent, dreams) or in the store (`manifests/<node>/`), this coordinator's own first;
- per node: lifelong state, its newest cycle, its agent, its running and recent phases (rq jobs of
  its queues, with their progress), the processes `ptzjepa up` supervises for it (state, restarts,
  how each last ended), the newest frame it recorded and its newest analysis report.

Registries are read with `cleanup=False`: a page view must never modify rq's bookkeeping.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from typing import Any

import redis
from rq.job import Job

from services.coordinator.children import read_children
from shared import cycles
from shared.config import Settings
from shared.keys import NODE_QUEUES, QUEUE_NAMES, Keys
from shared.queues import fetch_jobs, job_queue
from shared.schemas import FrameRecord
from shared.store import Store, StoreError

log = logging.getLogger(__name__)

NODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
REPORT_DIR_RE = re.compile(r"^analysis-[A-Za-z0-9_.-]{1,120}$")
FILE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,120}\.(png|html|json)$")
JOBS_PER_REGISTRY = 10
NODES_TTL_S = 15.0  # the node list is refreshed at most this often (it scans Redis keys)
JOBS_SHOWN = 15


def _s(v):
    return v.decode() if isinstance(v, bytes) else v


def known_nodes(client: redis.Redis, keys: Keys, settings: Settings, store: Store) -> list[str]:
    nodes = {settings.node}
    head = f"{keys.prefix}:node:"
    for key in client.scan_iter(match=f"{head}*", count=500):
        rest = _s(key)[len(head):]
        name = rest.split(":", 1)[0]
        if NODE_RE.match(name):
            nodes.add(name)
    try:
        base = store.full("manifests")
        if store.fs.exists(base):
            for entry in store.fs.ls(base, detail=False):
                name = str(entry).rstrip("/").rsplit("/", 1)[-1]
                if NODE_RE.match(name) and store.fs.isdir(entry):
                    nodes.add(name)
    except (OSError, StoreError) as exc:
        log.warning("listing nodes in the store failed: %s", exc)
    return [settings.node, *sorted(nodes - {settings.node})]


def _job_view(job: Job) -> dict[str, Any]:
    job_status = job.get_status(refresh=False)
    status = str(getattr(job_status, "value", job_status)) if job_status is not None else "unknown"
    view = {"job_id": job.id, "phase": job.meta.get("phase"), "cycle_id": job.meta.get("cycle_id"),
            "node": job.meta.get("node"), "status": status, "progress": job.meta.get("progress"),
            "enqueued_at": job.enqueued_at.timestamp() if job.enqueued_at else None,
            "started_at": job.started_at.timestamp() if job.started_at else None,
            "ended_at": job.ended_at.timestamp() if job.ended_at else None}
    if status == "failed":
        try:
            latest = job.latest_result()
            text = (getattr(latest, "exc_string", None) or "").strip().splitlines()
            view["error"] = text[-1] if text else "failed"
        except Exception:
            view["error"] = "failed"
    return view


def node_jobs(client: redis.Redis, keys: Keys, node: str) -> list[dict]:
    """The node's phases as rq jobs: queued, running and recently ended, newest first."""
    ids: list[str] = []
    for name in QUEUE_NAMES:
        queue = job_queue(keys.queue(name, node if name in NODE_QUEUES else None), client)
        ids += queue.get_job_ids(0, JOBS_PER_REGISTRY)
        for registry in (queue.started_job_registry, queue.deferred_job_registry,
                         queue.finished_job_registry, queue.failed_job_registry,
                         queue.canceled_job_registry):
            ids += registry.get_job_ids(0, JOBS_PER_REGISTRY - 1, desc=True, cleanup=False)
    views, seen = [], set()
    for job in fetch_jobs(list(dict.fromkeys(ids)), client):
        if job is None or job.id in seen:
            continue
        seen.add(job.id)
        if job.meta.get("node", node) != node or not job.meta.get("phase"):
            continue  # another node's job on a shared queue, or not a phase (lifelong restarts)
        views.append(_job_view(job))
    views.sort(key=lambda v: max(v["ended_at"] or 0, v["started_at"] or 0, v["enqueued_at"] or 0),
               reverse=True)
    running = [v for v in views if v["status"] == "started"]
    rest = [v for v in views if v["status"] != "started"]
    return running + rest[:max(0, JOBS_SHOWN - len(running))]


class LatestFrames:
    """The newest frame of each node, from the manifests. Manifests are immutable, so each one is
    read once and remembered; a refresh reads only manifests it has not seen."""

    def __init__(self, store: Store):
        self.store = store
        self._lock = threading.Lock()
        self._seen: dict[str, FrameRecord | None] = {}

    def latest(self, node: str) -> FrameRecord | None:
        with self._lock:
            best = None
            for rel in self.store.list(f"manifests/{node}", ".jsonl"):
                if rel not in self._seen:
                    try:
                        records = self.store.read_manifest(rel)
                        self._seen[rel] = max(records, key=lambda r: r.captured_at) if records else None
                    except StoreError as exc:
                        log.warning("status page: %s", exc)
                        continue  # not remembered: a later refresh tries again
                rec = self._seen[rel]
                if rec is not None and (best is None or rec.captured_at > best.captured_at):
                    best = rec
            return best


def latest_report(store: Store, node: str) -> dict | None:
    """The newest published analysis report of `node` (its report.json and its PNGs)."""
    folders = set()
    for rel in store.list(f"reports/{node}", "report.json"):
        parts = rel.split("/")
        if len(parts) == 4 and REPORT_DIR_RE.match(parts[2]):
            folders.add(parts[2])
    if not folders:
        return None
    folder = max(folders)
    try:
        meta = store.read_json(f"reports/{node}/{folder}/report.json")
    except StoreError as exc:
        return {"folder": folder, "error": str(exc), "plots": []}
    base = f"/ui/reports/{node}/{folder}"
    plots = [{"title": f.get("title", f.get("file")), "url": f"{base}/{f['file']}"}
             for f in meta.get("figures", []) if FILE_RE.match(str(f.get("file", "")))]
    return {"folder": folder, "generated_at": meta.get("generated_at"), "index_url": f"{base}/index.html",
            "plots": plots, "notes": meta.get("notes", [])[:10]}


class NodeList:
    """`known_nodes`, remembered for NODES_TTL_S: a page refreshing every few seconds must not scan
    the keyspace every time."""

    def __init__(self):
        self._lock = threading.Lock()
        self._nodes: list[str] = []
        self._at = -float("inf")

    def get(self, client: redis.Redis, keys: Keys, settings: Settings, store: Store) -> list[str]:
        with self._lock:
            if time.monotonic() - self._at > NODES_TTL_S:
                self._nodes = known_nodes(client, keys, settings, store)
                self._at = time.monotonic()
            return list(self._nodes)


def snapshot(client: redis.Redis, store: Store, settings: Settings, frames: LatestFrames,
             nodes: NodeList | None = None) -> dict:
    keys = Keys(settings.redis_prefix)
    problems: list[str] = []
    out_nodes = []
    names = nodes.get(client, keys, settings, store) if nodes else known_nodes(client, keys, settings, store)
    for node in names:
        entry: dict[str, Any] = {"node": node, "this": node == settings.node}
        entry["lifelong"] = cycles.lifelong_state(client, keys, node)
        recent = cycles.list_cycles(client, keys, node, limit=1)
        entry["cycles_total"] = int(client.zcard(keys.cycles(node)))
        entry["latest_cycle"] = ({k: recent[0][k] for k in ("id", "status", "created_at", "ended_at",
                                                              "reason")} if recent else None)
        raw = client.get(keys.agent_latest(node))
        agent = json.loads(raw) if raw else None
        entry["agent"] = ({k: agent.get(k) for k in ("sha256", "wm_slot", "wm_version", "trained_at",
                                                      "final_loss", "updates")} if agent else None)
        entry["children"] = read_children(client, keys, node)  # supervised by `ptzjepa up`
        entry["jobs"] = node_jobs(client, keys, node)
        entry["running"] = [j for j in entry["jobs"] if j["status"] == "started"]
        try:
            rec = frames.latest(node)
        except (OSError, StoreError) as exc:
            rec = None
            problems.append(f"frames of {node}: {exc}")
        entry["latest_frame"] = None if rec is None else {
            "frame_id": rec.frame_id, "captured_at": rec.captured_at.isoformat(), "source": rec.source,
            "pose": rec.pose.model_dump(), "camera": rec.camera, "round_id": rec.round_id,
            "image_url": f"/v1/frames/latest.jpg?node={node}&frame={rec.frame_id}"}
        try:
            entry["report"] = latest_report(store, node)
        except (OSError, StoreError) as exc:
            entry["report"] = None
            problems.append(f"reports of {node}: {exc}")
        out_nodes.append(entry)
    return {"node": settings.node, "generated_at": time.time(), "nodes": out_nodes,
            "problems": problems}
