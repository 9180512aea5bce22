"""`ptzjepa report --curiosity FILE`: the curiosity benchmark's learning curves as a figure, a table
and report.json entries, from bench/curiosity.py's JSON alone (an empty store), and clear errors
for files that are not such results."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from ptzjepa.cli import app
from services.coordinator.report import ReportError, build_report
from services.coordinator.report.curves import STRATA_ORDER, load_curves
from shared.config import load_settings
from shared.store import Store
from tests.coordinator.report.test_report import check_report_folder

ARMS = ("progress", "measured_balanced", "random")
CYCLES = list(range(6))


def _bench(seeds: int = 2, scene: str = "default") -> dict:
    """A result shaped as bench/curiosity.py writes it: per seed, one {stratum: ratio} per cycle;
    `curves`, the means over seeds, one list per stratum. The random arm has no held-out movers
    transition after the last cycle (null) in every seed."""
    rng = random.Random(7)
    per_seed = []
    for seed in range(seeds):
        arms = {}
        for k, arm in enumerate(ARMS):
            points = [{s: round(1.0 - 0.05 * c * (k + 1) + rng.uniform(-0.02, 0.02), 4)
                       for s in STRATA_ORDER} for c in CYCLES]
            if arm == "random":
                points[-1]["movers"] = None
            arms[arm] = points
        per_seed.append({"seed": seed, "curves": {"cycle": CYCLES, "arms": arms}})

    def mean(arm: str, s: str, c: int) -> float | None:
        vals = [r["curves"]["arms"][arm][c][s] for r in per_seed]
        vals = [v for v in vals if v is not None]
        return sum(vals) / len(vals) if vals else None

    curves = {"cycle": CYCLES, "arms": {a: {s: [mean(a, s, c) for c in CYCLES] for s in STRATA_ORDER}
                                        for a in ARMS}}
    return {"curves": curves, "per_seed": per_seed, "scene": scene, "learning_gain": {}}


def _write(path: Path, doc: dict | str) -> Path:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return path


def _empty_node(tmp_path: Path):
    settings = load_settings(environ={}, data_dir=tmp_path / "data", camera={"driver": "hanwha"})
    return settings, Store(str(tmp_path / "store"))


def test_learning_curves_of_a_bench_result_without_node_data(tmp_path):
    doc = _bench()
    bench = _write(tmp_path / "curiosity.json", doc)
    settings, store = _empty_node(tmp_path)
    report = build_report(settings, tmp_path / "r", store=store, redis_problem="not configured",
                          curiosity=[bench])
    png = tmp_path / "r" / "learning_curves_1.png"
    assert png.is_file() and png.stat().st_size > 0
    with Image.open(png) as img:
        assert img.format == "PNG" and img.width > 800
    check_report_folder(tmp_path / "r")  # valid, not blank, every reference exists
    assert [f["file"] for f in report["figures"]] == ["learning_curves_1.png"]
    (entry,) = report["learning_curves"]
    assert entry["file"] == str(bench) and entry["figure"] == "learning_curves_1.png"
    assert entry["scene"] == "default" and entry["seeds"] == ["0", "1"]
    assert entry["strata"] == list(STRATA_ORDER) and entry["arms"] == list(ARMS)
    assert entry["final_cycle"] == 5
    for arm in ARMS:
        for s in STRATA_ORDER:
            assert entry["final"][arm][s] == pytest.approx(doc["curves"]["arms"][arm][s][-1])
    assert entry["final"]["random"]["movers"] is None
    on_disk = json.loads((tmp_path / "r" / "report.json").read_text())
    assert on_disk["learning_curves"][0]["final"] == entry["final"]
    page = (tmp_path / "r" / "index.html").read_text()
    assert "src='learning_curves_1.png'" in page and "Learning curves: scene default" in page
    assert "arm (after cycle 5)" in page and "random (random policy)" in page and "&mdash;" in page
    assert f"{doc['curves']['arms']['progress']['learnable'][-1]:.3f}" in page
    assert "no frames of node node0" in page  # node data stays reported as missing


def test_strata_absent_from_the_file_get_no_panel_and_one_seed_is_enough(tmp_path):
    doc = _bench(seeds=1, scene="photo.jpg")
    for arms in (doc["curves"]["arms"], *[r["curves"]["arms"] for r in doc["per_seed"]]):
        for arm, series in arms.items():
            if isinstance(series, dict):
                del series["detail"]
            else:
                arms[arm] = [{s: v for s, v in p.items() if s != "detail"} for p in series]
    loaded = load_curves(_write(tmp_path / "b.json", doc))
    assert loaded.strata == [s for s in STRATA_ORDER if s != "detail"]
    assert loaded.scene == "photo.jpg" and len(loaded.seeds) == 1


def test_several_files_through_the_cli(tmp_path):
    a = _write(tmp_path / "default.json", _bench())
    b = _write(tmp_path / "photo.json", _bench(scene="pano.jpg"))
    env = {"PTZJEPA_DATA_DIR": str(tmp_path / "data"), "PTZJEPA_CAMERA__DRIVER": "hanwha"}
    out = tmp_path / "r"
    result = CliRunner().invoke(app, ["report", "--out", str(out), "--no-publish", "--no-tsne",
                                      "--curiosity", str(a), "--curiosity", str(b)], env=env)
    assert result.exit_code == 0, result.output
    report = check_report_folder(out)
    assert [e["scene"] for e in report["learning_curves"]] == ["default", "pano.jpg"]
    assert {f["file"] for f in report["figures"]} == {"learning_curves_1.png", "learning_curves_2.png"}
    assert "learning curves of" in result.output


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("{not json", "not JSON"),
    ({"learning_gain": {}}, "no `curves`"),
    ({"curves": {"arms": {"random": {"overall": [1.0]}}}}, "`curves.cycle` is missing"),
    ({"curves": {"cycle": [0, 1], "arms": {}}}, "`curves.arms` is missing or empty"),
    ({"curves": {"cycle": [0, 1], "arms": {"random": {"overall": [1.0]}}}},
     "curves.arms.random.overall holds 1 values for 2 cycles"),
    ({"curves": {"cycle": [0], "arms": {"random": {"overall": ["x"]}}}}, "not a number or null"),
    ({"curves": {"cycle": [0], "arms": {"random": {"overall": [1.0]}}}, "per_seed": [{"seed": 0}]},
     "`per_seed[0]` has no `curves`"),
])
def test_unusable_files_are_named_with_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "bench.json"
    if content is not None:
        _write(path, content)
    settings, store = _empty_node(tmp_path)
    with pytest.raises(ReportError, match=r"curiosity file .*bench\.json: ") as caught:
        build_report(settings, tmp_path / "r", store=store, redis_problem="none", curiosity=[path])
    assert message in str(caught.value)
    assert not (tmp_path / "r" / "index.html").exists()


def test_the_cli_refuses_an_unusable_file_as_other_report_errors(tmp_path):
    bad = _write(tmp_path / "bad.json", {"learning_gain": {}})
    env = {"PTZJEPA_DATA_DIR": str(tmp_path / "data"), "PTZJEPA_CAMERA__DRIVER": "hanwha"}
    result = CliRunner().invoke(app, ["report", "--out", str(tmp_path / "r"), "--no-publish",
                                      "--curiosity", str(bad)], env=env)
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "no report:" in text and "bad.json" in text and "no `curves`" in text
