"""`ptzjepa report` on a real two-cycle simulated run: every plot is a valid, non-empty PNG and the
page references only files that exist; with Redis (cycle records) and from the store alone."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ptzjepa.cli import app
from services.camera.sim.scene_map import scene_for
from services.coordinator.report import build_report, parse_cycle_range
from shared.config import load_settings
from shared.store import Store

EXPECTED = {"losses.png", "where.png", "episodes.png", "embeddings_pca.png", "region_error.png"}


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.refs.append(value)


def check_report_folder(folder: Path) -> dict:
    """Every PNG opens and is not blank; index.html references only files that exist here."""
    report = json.loads((folder / "report.json").read_text())
    pngs = sorted(folder.glob("*.png"))
    assert {p.name for p in pngs} == {f["file"] for f in report["figures"]}
    for png in pngs:
        with Image.open(png) as img:
            img.verify()
        with Image.open(png) as img:
            assert img.format == "PNG" and img.width >= 300 and img.height >= 200, png.name
            pixels = np.asarray(img.convert("L"), dtype=np.float32)
        assert pixels.std() > 5.0, f"{png.name} looks blank"
        assert (pixels < 128).mean() > 0.005, f"{png.name} has (almost) nothing drawn"
    parser = _Refs()
    parser.feed((folder / "index.html").read_text())
    assert parser.refs, "the page references nothing"
    for ref in parser.refs:
        assert not re.match(r"^[a-z]+:", ref) and not ref.startswith("/"), f"external reference {ref}"
        assert (folder / ref).is_file(), f"index.html references {ref}, which does not exist"
    return report


def test_report_of_two_cycles_through_the_cli(two_cycles, tmp_path):
    out = tmp_path / "report"
    env = {**two_cycles.env}
    result = CliRunner().invoke(app, ["report", "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    report = check_report_folder(out)
    names = {f["file"] for f in report["figures"]}
    assert EXPECTED <= names
    try:
        import sklearn  # noqa: F401
        assert "embeddings_tsne.png" in names
    except ImportError:
        assert any("scikit-learn" in n for n in report["notes"])
    s = report["summary"]
    assert s["cycle_source"] == "redis" and s["cycles"] == 2
    assert s["frames_by_source"] == {"sweep": 20, "navigate": 16} and s["rounds"] == 4
    assert s["versions"] == 2 and s["agents"] == 2
    assert report["scene"] == "sim" and report["model"]["kind"] == "resume"
    assert report["region_error"]["cycles"] == ["c1", "c2"]
    assert "static" in report["region_error"]["regions"]
    # every transition (hold frames included), per cycle
    assert sum(map(sum, report["region_error"]["count"])) == 2 * (36 - 4)
    page = (out / "index.html").read_text()
    for cycle_id in two_cycles.cycle_ids:
        assert cycle_id in page
    assert not report["notes"] or all("Redis" not in n for n in report["notes"])
    # published into the store for the status page
    folder = result.output.split("stored as ")[1].split()[0]
    assert folder.startswith("reports/node0/analysis-") and two_cycles.store.exists(f"{folder}/index.html")
    assert json.loads(two_cycles.store.read_bytes(f"{folder}/report.json"))["summary"] == s


def test_report_from_the_store_alone_of_selected_cycles(two_cycles, tmp_path):
    settings = two_cycles.settings.model_copy(update={"redis_url": None})
    report = build_report(settings, tmp_path / "r", scene=scene_for(settings),
                          redis_problem="no Redis URL is configured", cycles="2:2", tsne=False)
    check_report_folder(tmp_path / "r")
    s = report["summary"]
    assert s["cycle_source"] == "store" and s["cycles_total"] == 2 and s["cycles"] == 1
    assert s["frames_by_source"] == {"navigate": 16} and s["versions"] == 1 and s["agents"] == 1
    assert report["region_error"]["cycles"] == ["c2"]
    assert any("Redis is not available" in n and "inferred" in n for n in report["notes"])
    assert EXPECTED <= {f["file"] for f in report["figures"]}
    assert "Missing or partial" in (tmp_path / "r" / "index.html").read_text()
    with pytest.raises(ValueError, match="2 cycle"):
        build_report(settings, tmp_path / "x", cycles="5", tsne=False)


def test_report_of_an_empty_store_is_a_page_of_what_is_missing(tmp_path):
    settings = load_settings(environ={}, data_dir=tmp_path / "data", camera={"driver": "hanwha"})
    report = build_report(settings, tmp_path / "r", store=Store(str(tmp_path / "store")),
                          redis_problem="not configured")
    assert report["figures"] == []
    text = (tmp_path / "r" / "index.html").read_text()
    assert "no frames of node node0" in text and "no world-model version" in text
    check_report_folder(tmp_path / "r")


@pytest.mark.parametrize("text, expected", [
    (None, (None, None)), ("2:5", (2, 5)), ("3:", (3, None)), (":4", (None, 4)), ("7", (7, 7)),
])
def test_cycle_ranges(text, expected):
    assert parse_cycle_range(text) == expected


@pytest.mark.parametrize("text", ["5:2", "a:b", "1-3", "1:2:3"])
def test_bad_cycle_ranges_are_refused(text):
    with pytest.raises(ValueError, match="--cycles"):
        parse_cycle_range(text)


def test_versions_whose_publication_was_refused_are_left_out(two_cycles, tmp_path):
    import shutil

    from services.coordinator.report.data import gather
    from shared.redis import connect

    copy = Store(str(shutil.copytree(two_cycles.settings.resolved_store_url(), tmp_path / "store")))
    real = json.loads(copy.read_bytes(copy.list("models/wm_00", ".json")[0]))
    # files a holder wrote before the fencing check refused its publication: in no lineage
    copy.write_json(f"models/wm_00/{'f' * 64}.json", {**real, "version": "f" * 64})
    client = connect(two_cycles.redis_url)
    try:
        data = gather(copy, "node0", redis_client=client, redis_prefix=two_cycles.settings.redis_prefix,
                      slots=two_cycles.settings.worldmodel.slot_names())
    finally:
        client.close()
    assert len(data.versions) == 2 and all(m["version"] != "f" * 64 for m in data.versions)
    assert any("never published" in n for n in data.notes)
    alone = gather(copy, "node0", redis_problem="none")
    assert len(alone.versions) == 3  # without Redis there is no telling


def test_the_report_finds_a_running_embedded_redis_or_says_why_not(tmp_path):
    from services.coordinator.report.redis_access import open_redis
    from shared.redis import EmbeddedRedis

    settings = load_settings(environ={}, data_dir=tmp_path / "data")
    client, problem = open_redis(settings)
    assert client is None and "no embedded node is running" in problem
    server = EmbeddedRedis(tmp_path / "data")
    try:
        client, problem = open_redis(settings)
        assert problem is None and client.ping()
        client.close()
    finally:
        server.close()
    client, problem = open_redis(settings)
    assert client is None and problem
    unreachable = load_settings(environ={}, data_dir=tmp_path / "data",
                                redis_url="redis://:secret@127.0.0.1:1/0")
    client, problem = open_redis(unreachable, timeout_s=0.5)
    assert client is None and "cannot reach" in problem and "secret" not in problem
