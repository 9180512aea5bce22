"""The curiosity benchmark's learning curves in the report (`ptzjepa report --curiosity FILE`).

bench/curiosity.py writes `curves` {cycle: [...], arms: {arm: {stratum: [one value per cycle]}}}
(means over seeds) and `per_seed` [{seed, curves: {cycle, arms: {arm: [{stratum: value} per
cycle]}}}]; both layouts of an arm are read here. A value is an arm's held-out one-step error
ratio against its own copy baseline (lower is better), or null where the stratum had no held-out
transition. The arm "random" is the random policy; the others are named by their reward.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from services.coordinator.report import plots
from services.coordinator.report.errors import ReportError
from services.coordinator.report.sections import ReportRun

STRATA_ORDER = ("overall", "learnable", "static", "noise", "periodic", "movers", "detail")
RANDOM_ARM = "random"

Series = list[float | None]
Arms = dict[str, dict[str, Series]]  # arm -> stratum -> one value per cycle


class _Invalid(ValueError):
    """A part of the file that is not what bench/curiosity.py writes (the message says which)."""


@dataclass
class CuriosityCurves:
    """One bench result's learning curves: the means over seeds and each seed's own."""

    source: Path
    scene: str
    cycles: list[int]
    mean: Arms
    seeds: list[tuple[str, Arms]] = field(default_factory=list)  # (seed, its curves)

    @property
    def strata(self) -> list[str]:
        present = {s for series in self.mean.values() for s in series}
        known = [s for s in STRATA_ORDER if s in present]
        return known + sorted(present - set(known))

    def final(self) -> dict[str, dict[str, float | None]]:
        """Each arm's value per stratum after the last cycle."""
        return {arm: {s: series[s][-1] if s in series else None for s in self.strata}
                for arm, series in self.mean.items()}

    def as_json(self, figure: str) -> dict[str, Any]:
        return {"file": str(self.source), "figure": figure, "scene": self.scene,
                "seeds": [seed for seed, _ in self.seeds], "cycle": self.cycles, "strata": self.strata,
                "arms": list(self.mean), "final_cycle": self.cycles[-1], "final": self.final(),
                "curves": self.mean}

    def table(self) -> tuple[list[str], list[list]]:
        """The HTML table of the final values: one row per arm, one column per stratum."""
        headers = [f"arm (after cycle {self.cycles[-1]})", *self.strata]
        rows = []
        for arm, values in self.final().items():
            label = f"{escape(arm)} (random policy)" if arm == RANDOM_ARM else escape(arm)
            rows.append([label, *[f"{v:.3f}" if v is not None else "&mdash;" for v in values.values()]])
        return headers, rows


def _value(v: Any, where: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _Invalid(f"{where} holds {v!r}, not a number or null")
    return float(v) if math.isfinite(v) else None


def _arm(entry: Any, n: int, where: str) -> dict[str, Series]:
    """One arm's curves, given as {stratum: [per cycle]} or as [{stratum: value} per cycle]."""
    if isinstance(entry, list):
        if not all(isinstance(point, dict) for point in entry):
            raise _Invalid(f"{where} is a list whose items are not {{stratum: value}} objects")
        strata = list(dict.fromkeys(s for point in entry for s in point))
        entry = {s: [point.get(s) for point in entry] for s in strata}
    if not isinstance(entry, dict) or not entry:
        raise _Invalid(f"{where} is not an object of strata")
    out: dict[str, Series] = {}
    for stratum, series in entry.items():
        if not isinstance(series, list) or len(series) != n:
            got = f"{len(series)} values" if isinstance(series, list) else repr(series)[:40]
            raise _Invalid(f"{where}.{stratum} holds {got} for {n} cycles")
        out[str(stratum)] = [_value(v, f"{where}.{stratum}[{i}]") for i, v in enumerate(series)]
    return out


def _curves(obj: Any, where: str) -> tuple[list[int], Arms]:
    if not isinstance(obj, dict):
        raise _Invalid(f"`{where}` is not an object")
    cycles = obj.get("cycle")
    if not isinstance(cycles, list) or not cycles or not all(
            isinstance(c, int) and not isinstance(c, bool) for c in cycles):
        raise _Invalid(f"`{where}.cycle` is missing or not a non-empty list of cycle numbers")
    arms = obj.get("arms")
    if not isinstance(arms, dict) or not arms:
        raise _Invalid(f"`{where}.arms` is missing or empty")
    return cycles, {str(a): _arm(e, len(cycles), f"{where}.arms.{a}") for a, e in arms.items()}


def _document(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"curiosity file {path}: no such file") from None
    except IsADirectoryError:
        raise ReportError(f"curiosity file {path}: a folder, not a bench/curiosity.py JSON file") from None
    except UnicodeDecodeError:
        raise ReportError(f"curiosity file {path}: not JSON (not UTF-8 text)") from None
    except OSError as exc:
        raise ReportError(f"curiosity file {path}: cannot be read ({exc.strerror})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"curiosity file {path}: not JSON ({exc.msg}, line {exc.lineno} "
                          f"column {exc.colno})") from None
    if not isinstance(doc, dict) or "curves" not in doc:
        raise ReportError(f"curiosity file {path}: no `curves` (the learning curves that "
                          f"bench/curiosity.py writes)")
    return doc


def load_curves(path: Path) -> CuriosityCurves:
    """The learning curves of one bench/curiosity.py result, or a ReportError naming the file and
    what is missing or wrong in it."""
    path = Path(path)
    doc = _document(path)
    try:
        cycles, mean = _curves(doc["curves"], "curves")
        seeds = []
        per_seed = doc.get("per_seed") or []
        if not isinstance(per_seed, list):
            raise _Invalid("`per_seed` is not a list")
        for i, entry in enumerate(per_seed):
            if not isinstance(entry, dict) or "curves" not in entry:
                raise _Invalid(f"`per_seed[{i}]` has no `curves`")
            seed_cycles, arms = _curves(entry["curves"], f"per_seed[{i}].curves")
            if seed_cycles != cycles:
                raise _Invalid(f"`per_seed[{i}].curves.cycle` {seed_cycles} differs from "
                               f"`curves.cycle` {cycles}")
            seeds.append((str(entry.get("seed", i)), arms))
    except _Invalid as exc:
        raise ReportError(f"curiosity file {path}: {exc}") from None
    return CuriosityCurves(source=path, scene=str(doc.get("scene") or "unnamed"), cycles=cycles,
                           mean=mean, seeds=seeds)


def curves_section(run: ReportRun, results: list[CuriosityCurves]) -> tuple[list[dict], dict]:
    """One small-multiples figure per result; returns their report.json entries and the final
    values' HTML table of each figure (by file name)."""
    entries, tables = [], {}
    for i, c in enumerate(results, 1):
        name = plots.plot_learning_curves(run.out_dir, f"learning_curves_{i}.png", c.cycles,
                                          c.strata, c.mean, [arms for _, arms in c.seeds])
        seeds = f"mean over {len(c.seeds)} seeds (thick), each seed (thin)" if len(c.seeds) > 1 else (
            f"seed {c.seeds[0][0]}" if c.seeds else "mean over seeds")
        run.add(name, f"Learning curves: scene {c.scene} ({c.source.name})",
                f"Curiosity benchmark ({c.source}): held-out one-step error ratio against each arm's "
                f"copy baseline after every cycle, per stratum (lower is better; dotted: the copy "
                f"baseline, 1.0); one colour per arm, the random policy dashed; {seeds}. A gap is a "
                f"cycle without held-out transitions in that stratum.", "")
        entries.append(c.as_json(name))
        tables[name] = c.table()
    return entries, tables
