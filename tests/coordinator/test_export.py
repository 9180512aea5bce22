"""`ptzjepa export-embeddings` on the shared two-cycle run: one row per frame, in manifest order,
with the poses and times of the manifests and the three embeddings of the chosen model."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from safetensors.numpy import load_file
from typer.testing import CliRunner

from ptzjepa.cli import app
from services.coordinator.export import ExportError, export_embeddings
from services.coordinator.report.data import read_rounds, read_versions


def _frames(store):
    return [r for records in read_rounds(store, "node0", []).values() for r in records]


def test_export_through_the_cli_matches_the_manifests(two_cycles, tmp_path):
    out = tmp_path / "emb.safetensors"
    result = CliRunner().invoke(app, ["export-embeddings", "--out", str(out)], env=two_cycles.env)
    assert result.exit_code == 0, result.output
    tensors = load_file(str(out))
    side = json.loads((tmp_path / "emb.safetensors.json").read_text())
    frames = _frames(two_cycles.store)
    n, dim = len(frames), 32
    assert side["rows"] == n == 36 and side["columns"]["frame_id"] == [f.frame_id for f in frames]
    # the default model is the newest published version (Redis: the slots' published records)
    newest = read_versions(two_cycles.store, [])[-1]
    assert (side["model"]["slot"], side["model"]["version"]) == (newest["slot"], newest["version"])
    assert side["model"]["checkpoint"] == "resume"
    for name in ("context", "target", "predictor"):
        assert tensors[name].shape == (n, dim) and tensors[name].dtype == np.float32
    np.testing.assert_allclose(tensors["pose"], [[f.pose.pan, f.pose.tilt, f.pose.zoom] for f in frames])
    np.testing.assert_allclose(tensors["captured_at"], [f.captured_at.timestamp() for f in frames])
    assert side["columns"]["captured_at_iso"] == [f.captured_at.isoformat() for f in frames]
    assert list(tensors["step"]) == [f.step for f in frames]
    assert list(tensors["action"]) == [-1 if f.action is None else f.action for f in frames]
    assert all(not math.isnan(t) for t in tensors["sim_time"])
    first = np.array([f.step == 0 for f in frames])
    assert (tensors["has_prediction"] == ~first).all()
    assert np.isnan(tensors["predictor"][first]).all() and np.isfinite(tensors["predictor"][~first]).all()
    observed = tensors["observed_error"][~first]
    assert np.isfinite(observed).all() and (observed >= 0).all()
    assert np.isfinite(tensors["context"]).all() and np.isfinite(tensors["target"]).all()
    # the context encoder (from the resume file) is not the target (EMA) encoder
    assert not np.allclose(tensors["context"], tensors["target"])


def test_export_of_a_chosen_version_with_tokens(two_cycles, tmp_path):
    oldest = read_versions(two_cycles.store, [])[0]
    result = export_embeddings(two_cycles.settings, tmp_path / "t.safetensors", slot=oldest["slot"],
                               version=oldest["version"], tokens=True, max_frames=10)
    tensors = load_file(str(tmp_path / "t.safetensors"))
    assert result["version"] == oldest["version"] and result["pooling"] == "tokens"
    # whole rounds only: the two newest (agent) rounds of 4 frames; 32 px frames in 8 px patches
    assert result["frames"] == 8 and tensors["target"].shape == (8, 16, 32)


def test_export_refuses_what_it_cannot_do(two_cycles, tmp_path):
    with pytest.raises(ExportError, match=r"\.safetensors"):
        export_embeddings(two_cycles.settings, tmp_path / "e.csv")
    with pytest.raises(ExportError, match="no world-model version"):
        export_embeddings(two_cycles.settings, tmp_path / "e.safetensors", version="0" * 64)
    result = CliRunner().invoke(app, ["export-embeddings", "--out", str(tmp_path / "e.npz")],
                                env=two_cycles.env)
    assert result.exit_code == 1 and "nothing exported" in result.output
    assert not list(tmp_path.glob("e*"))


def test_export_to_parquet(two_cycles, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet", reason="parquet output needs pyarrow")
    export_embeddings(two_cycles.settings, tmp_path / "e.parquet")
    table = pq.read_table(tmp_path / "e.parquet")
    frames = _frames(two_cycles.store)
    assert table.num_rows == len(frames)
    assert table.column("frame_id").to_pylist() == [f.frame_id for f in frames]
    assert table.column("pan").to_pylist() == [f.pose.pan for f in frames]
    meta = json.loads(table.schema.metadata[b"ptzjepa"])
    assert meta["embedding_shape"] == [32]
