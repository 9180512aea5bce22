"""`ptzjepa report`: an HTML page with PNG plots of what a node learned and where it looked.

See docs/analysis.md. The report reads the store (frames, world-model versions, agents) and, where
Redis is reachable, the cycle records; it measures the world models on the recorded frames itself
(analysis.py), draws the figures (sections.py, plots.py) and writes `index.html`, the PNGs and
`report.json` into the output folder. Given curiosity benchmark results (bench/curiosity.py JSON),
it also plots their learning curves (curves.py); these need no node data. With `publish`, the
same files are also written to the store under `reports/<node>/analysis-<time>/`, where the
coordinator's status page shows the latest plots.
The caller describes the scene (shared.scene): the camera package builds a simulated one.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import logging
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.coordinator.report import analysis, curves, sections, tables
from services.coordinator.report.data import ReportData, gather, read_versions, summary
from services.coordinator.report.errors import ReportError
from services.coordinator.report.html import render
from shared.config import Settings
from shared.scene import Scene
from shared.schemas import FrameRecord
from shared.store import Store, StoreError, report_path

log = logging.getLogger(__name__)

REPORT_PREFIX = "analysis-"


def _limit_rounds(data: ReportData, max_frames: int) -> tuple[list[list[FrameRecord]], int]:
    """The newest whole rounds holding at most `max_frames` frames (oldest first), and how many
    frames were left out."""
    chosen: list[list[FrameRecord]] = []
    total = 0
    for records in reversed(list(data.rounds.values())):
        if total + len(records) > max_frames and chosen:
            break
        chosen.append(records)
        total += len(records)
    left_out = sum(len(r) for r in data.rounds.values()) - total
    return list(reversed(chosen)), left_out


def _start_run(settings: Settings, store: Store, node: str, out_dir: Path, data: ReportData,
               scene: Scene, max_frames: int) -> sections.ReportRun:
    data.notes.extend(scene.notes)
    rounds, left_out = _limit_rounds(data, max_frames)
    if left_out:
        data.notes.append(f"{left_out} older frames were left out of the measurements (max_frames "
                          f"{max_frames}; the newest whole rounds are kept)")
    return sections.ReportRun(store=store, node=node, out_dir=out_dir, data=data, scene=scene,
                              ranges=settings.camera.ranges(), rounds=rounds,
                              cache=analysis.FrameCache(store))


def _newest_version(run: sections.ReportRun) -> dict | None:
    """The newest world model of the node, else (with a note) the newest of any other node."""
    if run.data.versions:
        return run.data.versions[-1]
    if not run.frames:
        return None
    others = [m for m in read_versions(run.store, []) if m.get("node") != run.node]
    if not others:
        return None
    newest = others[-1]
    run.notes.append(f"node {run.node} trained no world model in the selected cycles; surprise is "
                     f"measured with {newest['slot']}/{newest['version'][:12]} (node "
                     f"{newest.get('node')})")
    return newest


def _measure_newest(run: sections.ReportRun) -> None:
    """Surprise colouring, episodes and embeddings all use the newest world model."""
    newest = _newest_version(run)
    if newest is not None and run.frames:
        try:
            loaded = analysis.load_version(run.store, newest["slot"], newest["version"])
            m = analysis.measure(loaded, run.rounds, run.cache, run.ranges)
            run.measured_by_version[newest["version"]] = m
            run.model_info = {"slot": loaded.slot, "version": loaded.version, "kind": loaded.kind}
            for r, e, s in zip(m.records, m.error, m.surprise, strict=True):
                run.error[r.frame_id] = e
                run.surprise[r.frame_id] = s
        except analysis.ModelUnavailable as exc:
            run.notes.append(f"surprise cannot be measured: {exc}")
    if run.cache.unreadable:
        _path, why = next(iter(run.cache.unreadable.items()))
        run.notes.append(f"{len(run.cache.unreadable)} frame file(s) could not be read and are left "
                         f"out, e.g. {why}")


def _report_json(run: sections.ReportRun, cycles: str | None, regions: sections.RegionErrors,
                 learning_curves: list[dict], started: float) -> dict[str, Any]:
    first = min((c.index for c in run.data.cycles), default=0)
    last = max((c.index for c in run.data.cycles), default=0)
    return {
        "format": "ptzjepa.report", "format_version": "1",
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "store": run.store.url, "cycles_selected": cycles or f"{first}:{last}",
        "summary": summary(run.data), "model": run.model_info, "scene": run.scene.kind,
        "figures": [{"file": n, "title": t} for n, t, _ in run.figures], "notes": run.notes,
        "region_error": regions.as_json(), "learning_curves": learning_curves,
        "seconds": round(time.time() - started, 3),
    }


def _write(run: sections.ReportRun, report: dict[str, Any], tables_after: dict,
           cycle_of_version: dict[str, int], cycle_of_agent: dict[str, int]) -> list[str]:
    """index.html and report.json into the output folder; returns every file of the report."""
    page = render(report, run.figures, tables.cycle_rows(run.data),
                  tables.version_rows(run.data, cycle_of_version),
                  tables.agent_rows(run.data, cycle_of_agent), tables_after)
    (run.out_dir / "index.html").write_text(page, encoding="utf-8")
    (run.out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    return ["index.html", "report.json", *[n for n, _, _ in run.figures]]


def build_report(settings: Settings, out_dir: Path, *, scene: Scene | None = None,
                 node: str | None = None, cycles: str | None = None, store: Store | None = None,
                 redis_client=None, redis_problem: str | None = None, max_frames: int = 1500,
                 max_eval_cycles: int = 12, tsne: bool = True, publish: bool = False,
                 curiosity: Sequence[Path] = ()) -> dict:
    """Write the report into `out_dir`; returns report.json's content (plus `files`).

    `scene` describes what the camera looks at (default: the generic scene of the configured
    camera's ranges: scatter maps, pan sectors as regions). `curiosity`: bench/curiosity.py
    result files whose learning curves are added (a ReportError names a file that is unusable)."""
    if importlib.util.find_spec("matplotlib") is None:
        raise ReportError("the report needs matplotlib: pip install 'matplotlib>=3.8'")
    benches = [curves.load_curves(Path(p)) for p in curiosity]  # before the slow part
    started = time.time()
    store = store or Store(settings.resolved_store_url())
    node = node or settings.node
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = gather(store, node, redis_client=redis_client, redis_prefix=settings.redis_prefix,
                  redis_problem=redis_problem, cycle_range=cycles,
                  slots=settings.worldmodel.slot_names())
    run = _start_run(settings, store, node, out_dir, data,
                     scene or Scene(settings.camera.ranges()), max_frames)
    _measure_newest(run)
    cycle_of_version = {m["version"]: c.index for c in data.cycles for m in c.versions}
    cycle_of_agent = {a["sha256"]: c.index for c in data.cycles for a in c.agents}
    sections.loss_section(run, cycle_of_version, cycle_of_agent)
    sections.where_section(run)
    sections.episode_section(run)
    sections.embedding_section(run, tsne)
    regions = sections.measure_region_errors(run, max_eval_cycles)
    sections.region_section(run, regions)
    learning_curves, curve_tables = curves.curves_section(run, benches)
    report = _report_json(run, cycles, regions, learning_curves, started)
    tables_after = {"region_error.png": (regions.html_headers(), regions.html_rows()), **curve_tables}
    files = _write(run, report, tables_after, cycle_of_version, cycle_of_agent)
    report["files"] = files
    if publish:
        report["published"] = publish_report(store, node, out_dir, files)
    return report


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
