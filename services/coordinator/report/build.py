"""`ptzjepa report`: an HTML page with PNG plots of what a node learned and where it looked.

See docs/analysis.md. The report reads the store (frames, world-model versions, agents) and, where
Redis is reachable, the cycle records; it measures the world models on the recorded frames itself
(analysis.py), draws the figures (plots.py) and writes `index.html`, the PNGs and `report.json`
into the output folder. With `publish`, the same files are also written to the store under
`reports/<node>/analysis-<time>/`, where the coordinator's status page shows the latest plots.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
import uuid
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from services.coordinator.report import analysis, plots
from services.coordinator.report.data import ReportData, gather, summary
from services.coordinator.report.html import _time, render
from services.coordinator.report.scene import Scene, scene_for
from shared.config import Settings
from shared.schemas import FrameRecord
from shared.store import Store, StoreError, report_path

log = logging.getLogger(__name__)

REPORT_PREFIX = "analysis-"


class ReportError(RuntimeError):
    pass


def _limit_rounds(data: ReportData, max_frames: int) -> tuple[list[list[FrameRecord]], int]:
    """The newest whole rounds holding at most `max_frames` frames (oldest first), and how many
    frames were left out."""
    chosen, total = [], 0
    for records in reversed(list(data.rounds.values())):
        if total + len(records) > max_frames and chosen:
            break
        chosen.append(records)
        total += len(records)
    left_out = sum(len(r) for r in data.rounds.values()) - total
    return list(reversed(chosen)), left_out


def _evenly(items: list, n: int) -> list:
    if len(items) <= n:
        return items
    picks = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in sorted(set(picks))]


def build_report(settings: Settings, out_dir: Path, *, node: str | None = None,
                 cycles: str | None = None, store: Store | None = None, redis_client=None,
                 redis_problem: str | None = None, max_frames: int = 1500,
                 max_eval_cycles: int = 12, tsne: bool = True, publish: bool = False) -> dict:
    """Write the report into `out_dir`; returns report.json's content (plus `files`)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ReportError("the report needs matplotlib: pip install 'matplotlib>=3.8'") from None
    started = time.time()
    store = store or Store(settings.resolved_store_url())
    node = node or settings.node
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = gather(store, node, redis_client=redis_client, redis_prefix=settings.redis_prefix,
                  redis_problem=redis_problem, cycle_range=cycles,
                  slots=settings.worldmodel.slot_names())
    notes = data.notes
    ranges = settings.camera.ranges()
    if node == settings.node:
        scene = scene_for(settings)
    else:
        scene = Scene(ranges)
        notes.append(f"node {node} is not this configuration's node ({settings.node}): its simulated "
                     f"scene is unknown here, so maps are scatters and regions are pan sectors")
    notes.extend(scene.notes)
    rounds, left_out = _limit_rounds(data, max_frames)
    if left_out:
        notes.append(f"{left_out} older frames were left out of the measurements (max_frames "
                     f"{max_frames}; the newest whole rounds are kept)")
    frames = [r for records in rounds for r in records]
    cache = analysis.FrameCache(store)

    # ---- the newest world model: surprise colouring, episodes, embeddings ---------------------------
    error: dict[str, float] = {}
    surprise: dict[str, float] = {}
    model_info = None
    measured_by_version: dict[str, analysis.Measured] = {}
    newest = data.versions[-1] if data.versions else None
    if newest is None and frames:
        others = [m for m in _all_versions(store) if m.get("node") != node]
        if others:
            newest = others[-1]
            notes.append(f"node {node} trained no world model in the selected cycles; surprise is "
                         f"measured with {newest['slot']}/{newest['version'][:12]} (node "
                         f"{newest.get('node')})")
    if newest is not None and frames:
        try:
            loaded = analysis.load_version(store, newest["slot"], newest["version"])
            m = analysis.measure(loaded, rounds, cache, ranges)
            measured_by_version[newest["version"]] = m
            model_info = {"slot": loaded.slot, "version": loaded.version, "kind": loaded.kind}
            for r, e, s in zip(m.records, m.error, m.surprise):
                error[r.frame_id] = e
                surprise[r.frame_id] = s
        except analysis.ModelUnavailable as exc:
            notes.append(f"surprise cannot be measured: {exc}")
    if cache.unreadable:
        path, why = next(iter(cache.unreadable.items()))
        notes.append(f"{len(cache.unreadable)} frame file(s) could not be read and are left out, "
                     f"e.g. {why}")

    figures: list[tuple[str, str, str]] = []

    def add(name: str | None, title: str, caption: str, missing: str) -> None:
        if name is None:
            notes.append(missing)
        else:
            figures.append((name, title, caption))

    cycle_of_version = {m["version"]: c.index for c in data.cycles for m in c.versions}
    cycle_of_agent = {a["sha256"]: c.index for c in data.cycles for a in c.agents}
    add(plots.plot_losses(out_dir, data.versions, data.agents, cycle_of_version, cycle_of_agent),
        "Loss curves",
        "World-model epoch losses of every version this node trained (each version continues its "
        "slot's previous one: a restart), and each agent training's final loss, by cycle.",
        "no loss curves: no world-model versions or agents in the selected cycles")
    add(plots.plot_where(out_dir, scene, frames, error),
        "Where the camera pointed",
        ("Pan/tilt of every frame over the simulated panorama (dashed: the known dynamic zones)"
         if scene.kind == "sim" else "Pan/tilt of every frame")
        + ", the random sweep and the agent side by side; top: coloured by the world model's error "
          "of the move that led to the frame (its surprise), bottom: by zoom.",
        "no pan/tilt map: no frames in the selected cycles")
    episodes = [r for r in rounds if r[0].source == "navigate"][-6:]
    if not episodes:
        episodes = [r for r in rounds if len(r) > 1][-3:]
        if episodes:
            notes.append("no agent episodes (navigate rounds) in the selected cycles: the episode "
                         "plot shows sweep rounds instead")
    add(plots.plot_episodes(out_dir, scene, episodes, error, surprise),
        "Episodes",
        "The newest agent episodes: the camera's path (left) and the surprise of each step (right): "
        "the error this report's world model makes on the move, the error recorded while "
        "navigating, the predicted surprise, and (simulator) how much of the view was moving.",
        "no episode plot: no rounds with frames")
    if model_info and frames:
        m = measured_by_version[model_info["version"]]
        emb = np.stack(m.target) if m.target else np.zeros((0, 1))
        vals = np.asarray(m.error, float)
        add(plots.plot_embeddings(out_dir, emb, m.records, vals, "pca") if len(m.records) >= 3 else None,
            "Embeddings (PCA)",
            "Token-averaged target-encoder embeddings of the frames, projected on their first two "
            "principal components; colour: world-model error of the move into the frame; marker: "
            "source (circle sweep, triangle agent, square import).",
            "no embedding projection: fewer than 3 readable frames")
        if tsne:
            try:
                import sklearn  # noqa: F401
                has_sklearn = True
            except ImportError:
                has_sklearn = False
                notes.append("t-SNE is skipped: scikit-learn is not installed "
                             "(pip install scikit-learn); the PCA projection is shown")
            if has_sklearn and len(m.records) >= 5:
                add(plots.plot_embeddings(out_dir, emb, m.records, vals, "tsne"),
                    "Embeddings (t-SNE)", "The same embeddings, embedded with t-SNE.",
                    "no t-SNE plot")
            elif has_sklearn:
                notes.append("t-SNE is skipped: fewer than 5 readable frames")
    elif frames:
        notes.append("no embedding projection: no world model could be loaded")

    # ---- world-model error per region over cycles -------------------------------------------
    region_rows, region_headers = [], []
    evaluated = [c for c in data.cycles if c.index > 0 and c.versions]
    if len(evaluated) > max_eval_cycles:
        notes.append(f"world-model errors per region are measured for {max_eval_cycles} of "
                     f"{len(evaluated)} cycles (evenly spaced)")
        evaluated = _evenly(evaluated, max_eval_cycles)
    regions = scene.regions()
    region_of = {r.frame_id: scene.region_of(r.pose.pan, r.pose.tilt) for r in frames}
    table = np.full((len(regions), len(evaluated)), np.nan)
    copy_table = np.full_like(table, np.nan)
    counts = np.zeros_like(table)
    labels = []
    for j, cycle in enumerate(evaluated):
        meta = cycle.versions[-1]
        labels.append(cycle.label)
        m = measured_by_version.get(meta["version"])
        if m is None:
            try:
                m = analysis.measure(analysis.load_version(store, meta["slot"], meta["version"]),
                                     rounds, cache, ranges)
                measured_by_version[meta["version"]] = m
            except analysis.ModelUnavailable as exc:
                notes.append(f"cycle {cycle.index}: {exc}")
                continue
        for i, region in enumerate(regions):
            errs = [e for r, e in zip(m.records, m.error) if region_of[r.frame_id] == region
                    and math.isfinite(e)]
            copies = [c for r, c in zip(m.records, m.copy_error) if region_of[r.frame_id] == region
                      and math.isfinite(c)]
            if errs:
                table[i, j] = float(np.mean(errs))
                copy_table[i, j] = float(np.mean(copies))
                counts[i, j] = len(errs)
    keep = [i for i in range(len(regions)) if counts[i].sum() > 0]
    regions_kept = [regions[i] for i in keep]
    if keep:
        table, copy_table, counts = table[keep], copy_table[keep], counts[keep]
    region_name = None
    if keep and labels:
        region_name = plots.plot_region_error(out_dir, regions_kept, labels, table, counts, copy_table)
        region_headers = ["region", *labels]
        region_rows = [[escape(reg), *[("" if not math.isfinite(v) else f"{v:.4g} (n={int(n)})")
                                       for v, n in zip(table[i], counts[i])]]
                       for i, reg in enumerate(regions_kept)]
    add(region_name, "World-model error per region over cycles",
        ("Regions are the simulated site's dynamic zones and the static rest"
         if scene.kind == "sim" else "Regions are 45-degree pan sectors")
        + "; a frame belongs to the region at the centre of its view. Each column evaluates the "
          "world model published in that cycle on the same moves (all selected frames); the dashed "
          "curve is the copy baseline (\"nothing moves\").",
        "no per-region errors: no cycle with a world model and moves to evaluate it on")

    # ---- tables, json, html ----------------------------------------------------------------
    cycles_rows = []
    for c in data.cycles:
        phases = ", ".join(f"{p.get('name')}: <span class='status-{escape(str(p.get('status')))}'>"
                           f"{escape(str(p.get('status')))}</span>" for p in c.phases) or "&mdash;"
        cycles_rows.append([c.label, escape(c.id), f"<span class='status-{escape(c.status)}'>"
                            f"{escape(c.status)}</span>", _time(c.start) if math.isfinite(c.start) else "",
                            phases, len(c.rounds), len(c.versions), len(c.agents)])
    version_rows = []
    for meta in data.versions:
        losses = meta.get("epoch_losses") or []
        parent = meta.get("parent") or {}
        version_rows.append([f"c{cycle_of_version.get(meta['version'], '?')}", escape(meta["slot"]),
                             f"<code>{escape(meta['version'][:12])}</code>",
                             f"<code>{escape(str(parent.get('version', ''))[:12])}</code>",
                             meta.get("epochs", ""), f"{losses[-1]:.4g}" if losses else "",
                             escape(str(meta.get("stop_reason", ""))), meta.get("frames_used", ""),
                             _time(meta.get("finished_at"))])
    agent_rows = []
    for a in data.agents:
        loss = a.get("final_loss")
        agent_rows.append([f"c{cycle_of_agent.get(a['sha256'], '?')}", f"<code>{escape(a['sha256'][:12])}</code>",
                           f"{escape(str(a.get('wm_slot')))}/<code>{escape(str(a.get('wm_version'))[:12])}</code>",
                           a.get("updates", ""), f"{loss:.4g}" if isinstance(loss, (int, float)) else "",
                           escape(str(a.get("stop_reason", ""))), _time(a.get("trained_at"))])
    first = min((c.index for c in data.cycles), default=0)
    last = max((c.index for c in data.cycles), default=0)
    report: dict[str, Any] = {
        "format": "ptzjepa.report", "format_version": "1",
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "store": store.url, "cycles_selected": cycles or f"{first}:{last}",
        "summary": summary(data), "model": model_info, "scene": scene.kind,
        "figures": [{"file": n, "title": t} for n, t, _ in figures], "notes": notes,
        "region_error": {"regions": regions_kept, "cycles": labels,
                         "mean_error": [[None if not math.isfinite(v) else v for v in row] for row in table.tolist()]
                         if keep else [],
                         "count": counts.astype(int).tolist() if keep else []},
        "seconds": 0.0,
    }
    report["seconds"] = round(time.time() - started, 3)
    (out_dir / "index.html").write_text(render(report, figures, cycles_rows, version_rows, agent_rows,
                                               region_rows, region_headers), encoding="utf-8")
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    files = ["index.html", "report.json", *[n for n, _, _ in figures]]
    report["files"] = files
    if publish:
        report["published"] = publish_report(store, node, out_dir, files)
    return report


def _all_versions(store: Store) -> list[dict]:
    from services.coordinator.report.data import read_versions
    return read_versions(store, [])


def publish_report(store: Store, node: str, out_dir: Path, files: list[str]) -> str:
    """Copy the report's files into the store (immutable, report.json last); returns the folder."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = report_path(node, f"{REPORT_PREFIX}{stamp}-{uuid.uuid4().hex[:6]}")
    ordered = [f for f in files if f != "report.json"] + ["report.json"]
    for name in ordered:
        try:
            store.write_bytes(f"{folder}/{name}", (Path(out_dir) / name).read_bytes())
        except StoreError as exc:
            raise ReportError(f"publishing the report to the store failed: {exc}") from None
    return folder
