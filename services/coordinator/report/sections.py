"""The report's sections: each measures what it needs and adds its figure (or a note of what is
missing) to the run. `build.py` calls them in the page's order."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import numpy as np

from services.coordinator.report import analysis, plots
from services.coordinator.report.data import ReportData
from shared.pose import PoseRanges
from shared.scene import Scene
from shared.schemas import FrameRecord
from shared.store import Store

NEWEST_EPISODES = 6
FALLBACK_EPISODES = 3


@dataclass
class ReportRun:
    """What the sections share: the inputs, the measurements so far, the figures and notes."""

    store: Store
    node: str
    out_dir: Path
    data: ReportData
    scene: Scene
    ranges: PoseRanges
    rounds: list[list[FrameRecord]]
    cache: analysis.FrameCache
    figures: list[tuple[str, str, str]] = field(default_factory=list)  # file, title, caption
    measured_by_version: dict[str, analysis.Measured] = field(default_factory=dict)
    error: dict[str, float] = field(default_factory=dict)  # per frame id: the move's WM error
    surprise: dict[str, float] = field(default_factory=dict)  # per frame id: predicted surprise
    model_info: dict[str, str] | None = None

    @property
    def notes(self) -> list[str]:
        return self.data.notes

    @property
    def frames(self) -> list[FrameRecord]:
        return [r for records in self.rounds for r in records]

    def add(self, name: str | None, title: str, caption: str, missing: str) -> None:
        if name is None:
            self.notes.append(missing)
        else:
            self.figures.append((name, title, caption))

    def measure(self, meta: dict) -> analysis.Measured:
        """`meta`'s version measured on the selected rounds (once per version)."""
        m = self.measured_by_version.get(meta["version"])
        if m is None:
            loaded = analysis.load_version(self.store, meta["slot"], meta["version"])
            m = analysis.measure(loaded, self.rounds, self.cache, self.ranges)
            self.measured_by_version[meta["version"]] = m
        return m


@dataclass
class RegionErrors:
    """World-model error per region (rows) and evaluated cycle (columns)."""

    regions: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    mean_error: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    copy_error: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    counts: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    def html_headers(self) -> list[str]:
        return ["region", *self.labels] if self.regions and self.labels else []

    def html_rows(self) -> list[list]:
        if not (self.regions and self.labels):
            return []
        return [[escape(reg), *[("" if not math.isfinite(v) else f"{v:.4g} (n={int(n)})")
                                for v, n in zip(self.mean_error[i], self.counts[i], strict=True)]]
                for i, reg in enumerate(self.regions)]

    def as_json(self) -> dict:
        rows = [[None if not math.isfinite(v) else v for v in row] for row in self.mean_error.tolist()]
        return {"regions": self.regions, "cycles": self.labels,
                "mean_error": rows if self.regions else [],
                "count": self.counts.astype(int).tolist() if self.regions else []}


def loss_section(run: ReportRun, cycle_of_version: dict[str, int], cycle_of_agent: dict[str, int]) -> None:
    run.add(plots.plot_losses(run.out_dir, run.data.versions, run.data.agents, cycle_of_version,
                              cycle_of_agent),
            "Loss curves",
            "World-model epoch losses of every version this node trained (each version continues its "
            "slot's previous one: a restart), and each agent training's final loss, by cycle.",
            "no loss curves: no world-model versions or agents in the selected cycles")


def where_section(run: ReportRun) -> None:
    run.add(plots.plot_where(run.out_dir, run.scene, run.frames, run.error),
            "Where the camera pointed",
            ("Pan/tilt of every frame over the simulated panorama (dashed: the known dynamic zones)"
             if run.scene.kind == "sim" else "Pan/tilt of every frame")
            + ", the random sweep and the agent side by side; top: coloured by the world model's error "
              "of the move that led to the frame (its surprise), bottom: by zoom.",
            "no pan/tilt map: no frames in the selected cycles")


def episode_section(run: ReportRun) -> None:
    episodes = [r for r in run.rounds if r[0].source == "navigate"][-NEWEST_EPISODES:]
    if not episodes:
        episodes = [r for r in run.rounds if len(r) > 1][-FALLBACK_EPISODES:]
        if episodes:
            run.notes.append("no agent episodes (navigate rounds) in the selected cycles: the episode "
                             "plot shows sweep rounds instead")
    run.add(plots.plot_episodes(run.out_dir, run.scene, episodes, run.error, run.surprise),
            "Episodes",
            "The newest agent episodes: the camera's path (left) and the surprise of each step (right): "
            "the error this report's world model makes on the move, the error recorded while "
            "navigating, the predicted surprise, and (simulator) how much of the view was moving.",
            "no episode plot: no rounds with frames")


def _has_sklearn() -> bool:
    return importlib.util.find_spec("sklearn") is not None


def embedding_section(run: ReportRun, tsne: bool) -> None:
    if not run.frames:
        return
    if run.model_info is None:
        run.notes.append("no embedding projection: no world model could be loaded")
        return
    m = run.measured_by_version[run.model_info["version"]]
    emb = np.stack(m.target) if m.target else np.zeros((0, 1))
    vals = np.asarray(m.error, float)
    run.add(plots.plot_embeddings(run.out_dir, emb, m.records, vals, "pca") if len(m.records) >= 3 else None,
            "Embeddings (PCA)",
            "Token-averaged target-encoder embeddings of the frames, projected on their first two "
            "principal components; colour: world-model error of the move into the frame; marker: "
            "source (circle sweep, triangle agent, square import).",
            "no embedding projection: fewer than 3 readable frames")
    if not tsne:
        return
    if not _has_sklearn():
        run.notes.append("t-SNE is skipped: scikit-learn is not installed "
                         "(pip install scikit-learn); the PCA projection is shown")
    elif len(m.records) >= 5:
        run.add(plots.plot_embeddings(run.out_dir, emb, m.records, vals, "tsne"),
                "Embeddings (t-SNE)", "The same embeddings, embedded with t-SNE.", "no t-SNE plot")
    else:
        run.notes.append("t-SNE is skipped: fewer than 5 readable frames")


def _evenly(items: list, n: int) -> list:
    if len(items) <= n:
        return items
    picks = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in sorted(set(picks))]


def _cycles_to_evaluate(run: ReportRun, max_eval_cycles: int) -> list:
    evaluated = [c for c in run.data.cycles if c.index > 0 and c.versions]
    if len(evaluated) > max_eval_cycles:
        run.notes.append(f"world-model errors per region are measured for {max_eval_cycles} of "
                         f"{len(evaluated)} cycles (evenly spaced)")
        evaluated = _evenly(evaluated, max_eval_cycles)
    return evaluated


def _region_means(m: analysis.Measured, region_of: dict[str, str], region: str
                  ) -> tuple[list[float], list[float]]:
    errs = [e for r, e in zip(m.records, m.error, strict=True)
            if region_of[r.frame_id] == region and math.isfinite(e)]
    copies = [c for r, c in zip(m.records, m.copy_error, strict=True)
              if region_of[r.frame_id] == region and math.isfinite(c)]
    return errs, copies


def measure_region_errors(run: ReportRun, max_eval_cycles: int) -> RegionErrors:
    """Each evaluated cycle's newest world model on every selected move, averaged by region."""
    evaluated = _cycles_to_evaluate(run, max_eval_cycles)
    regions = run.scene.regions()
    region_of = {r.frame_id: run.scene.region_of(r.pose.pan, r.pose.tilt) for r in run.frames}
    table = np.full((len(regions), len(evaluated)), np.nan)
    copy_table = np.full_like(table, np.nan)
    counts = np.zeros_like(table)
    labels = []
    for j, cycle in enumerate(evaluated):
        labels.append(cycle.label)
        try:
            m = run.measure(cycle.versions[-1])
        except analysis.ModelUnavailable as exc:
            run.notes.append(f"cycle {cycle.index}: {exc}")
            continue
        for i, region in enumerate(regions):
            errs, copies = _region_means(m, region_of, region)
            if errs:
                table[i, j] = float(np.mean(errs))
                copy_table[i, j] = float(np.mean(copies))
                counts[i, j] = len(errs)
    keep = [i for i in range(len(regions)) if counts[i].sum() > 0]
    if not keep:
        return RegionErrors(labels=labels, mean_error=table, copy_error=copy_table, counts=counts)
    return RegionErrors([regions[i] for i in keep], labels, table[keep], copy_table[keep], counts[keep])


def region_section(run: ReportRun, errors: RegionErrors) -> None:
    name = None
    if errors.regions and errors.labels:
        name = plots.plot_region_error(run.out_dir, errors.regions, errors.labels, errors.mean_error,
                                       errors.counts, errors.copy_error)
    run.add(name, "World-model error per region over cycles",
            ("Regions are the simulated site's dynamic zones and the static rest"
             if run.scene.kind == "sim" else "Regions are 45-degree pan sectors")
            + "; a frame belongs to the region at the centre of its view. Each column evaluates the "
              "world model published in that cycle on the same moves (all selected frames); the dashed "
              "curve is the copy baseline (\"nothing moves\").",
            "no per-region errors: no cycle with a world model and moves to evaluate it on")
