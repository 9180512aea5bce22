"""`ptzjepa export-embeddings`: embeddings of recorded frames as a columnar file.

For every frame of the chosen node(s) (manifest order: by capture time, round and step), one row:

- `context`: the context encoder's tokens (from the version's resume file; a version whose resume
  file is gone only has the target encoder, and the sidecar says so),
- `target`: the target encoder's tokens (the state the dreamer and the agent use),
- `predictor`: the predictor's prediction of this frame's state from the previous frame of its
  round and the two poses (NaN for the first frame of a round, `has_prediction` 0),
- `predicted_surprise`, `observed_error` (MSE between prediction and target) of that move,
- `pose` (pan, tilt, zoom), `captured_at` (Unix seconds, UTC), `sim_time`, `step`, `action`.

Embeddings are token-averaged (N, D) by default, or the full tokens (N, T, D) with `tokens=True`.

Formats, by the output's suffix:
- `.safetensors`: the tensors above (safetensors metadata: format, slot, version, pooling) plus a
  JSON sidecar `<file>.json` holding the string columns (frame_id, path, round_id, node, camera,
  source, ISO capture time) and a description of every column;
- `.parquet` (needs pyarrow): one table with a row per frame, list columns for the embeddings and
  the model in the schema metadata.
Files appear atomically (temporary name, then rename).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from services.coordinator.report import analysis
from services.coordinator.report.data import read_rounds, read_versions
from shared.config import Settings
from shared.schemas import FrameRecord
from shared.store import Store
from shared.tensorfile import canonical_header

FORMAT = "ptzjepa.embeddings"
FORMAT_VERSION = "1"

COLUMNS = {
    "context": "context-encoder embedding (token mean, or tokens)",
    "target": "target-encoder embedding: the world-model state (token mean, or tokens)",
    "predictor": "predicted state of this frame from the previous frame of its round (NaN: none)",
    "has_prediction": "1 where `predictor` holds a prediction",
    "predicted_surprise": "the world model's predicted surprise of the move into this frame (NaN: none)",
    "observed_error": "mean squared error between `predictor` and `target` tokens (NaN: none)",
    "pose": "pan (deg), tilt (deg), zoom (x) of the frame",
    "captured_at": "capture time, Unix seconds (UTC)",
    "sim_time": "simulated clock of the frame (NaN for real cameras)",
    "step": "index of the frame in its round",
    "action": "index into shared.pose.ACTIONS of the move into the frame (-1: none)",
}


class ExportError(RuntimeError):
    pass


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_embeddings(settings: Settings, out: str | Path, *, store: Store | None = None,
                      slot: str | None = None, version: str | None = None, node: str | None = None,
                      all_nodes: bool = False, tokens: bool = False, max_frames: int | None = None,
                      redis_latest=None, redis_newest=None) -> dict[str, Any]:
    out = Path(out)
    fmt = out.suffix.lower()
    if fmt not in (".safetensors", ".parquet"):
        raise ExportError(f"--out {out}: name the file .safetensors (with a .json sidecar) or .parquet")
    if fmt == ".parquet" and importlib.util.find_spec("pyarrow") is None:
        raise ExportError("parquet output needs pyarrow (pip install pyarrow); or write .safetensors")
    store = store or Store(settings.resolved_store_url())
    notes: list[str] = []
    try:
        slot, version = analysis.find_version(store, slot, version, read_versions(store, notes),
                                              redis_latest=redis_latest, redis_newest=redis_newest)
        loaded = analysis.load_version(store, slot, version)
    except analysis.ModelUnavailable as exc:
        raise ExportError(str(exc)) from None
    if loaded.kind == "share":
        notes.append("this version's resume file is unavailable: its sharing file has no context "
                     "encoder, so `context` equals `target`")
    nodes = _nodes(store, node or settings.node, all_nodes)
    rounds: list[list[FrameRecord]] = []
    for n in nodes:
        rounds += list(read_rounds(store, n, notes).values())
    rounds.sort(key=lambda r: (r[0].captured_at, r[0].round_id))
    if max_frames is not None:
        kept: list[list[FrameRecord]] = []
        total = 0
        for r in reversed(rounds):
            if total + len(r) > max_frames and kept:
                break
            kept.append(r)
            total += len(r)
        rounds = list(reversed(kept))
    if not rounds:
        raise ExportError(f"no frames of {', '.join(nodes)} in the store")
    cache = analysis.FrameCache(store)
    m = analysis.measure(loaded, rounds, cache, settings.camera.ranges(), with_context=True,
                         keep_tokens=tokens)
    if cache.unreadable:
        notes.append(f"{len(cache.unreadable)} frame file(s) could not be read and are left out")
    if not m.records:
        raise ExportError("none of the frames could be read")
    arrays = m.arrays()
    if tokens:
        emb = {k: np.stack(v).astype(np.float32) for k, v in m.tokens.items()}
    else:
        emb = {k: arrays[k].astype(np.float32) for k in ("context", "target", "predictor")}
    records = m.records
    table: dict[str, np.ndarray] = {
        **emb,
        "has_prediction": np.array([p is not None for p in m.predicted], np.uint8),
        "predicted_surprise": arrays["surprise"],
        "observed_error": arrays["error"],
        "pose": np.array([[r.pose.pan, r.pose.tilt, r.pose.zoom] for r in records], np.float64),
        "captured_at": np.array([r.captured_at.timestamp() for r in records], np.float64),
        "sim_time": np.array([r.sim_time if r.sim_time is not None else math.nan for r in records],
                             np.float64),
        "step": np.array([r.step for r in records], np.int64),
        "action": np.array([r.action if r.action is not None else -1 for r in records], np.int64),
    }
    strings: dict[str, list[str]] = {
               "frame_id": [r.frame_id for r in records], "path": [r.path for r in records],
               "round_id": [r.round_id for r in records], "node": [r.node for r in records],
               "camera": [r.camera for r in records], "source": [r.source for r in records],
               "captured_at_iso": [r.captured_at.isoformat() for r in records]}
    model = {"slot": slot, "version": version, "checkpoint": loaded.kind,
             "config": loaded.model.cfg.to_dict(), "node_trained": loaded.meta.get("node")}
    pooling = "tokens" if tokens else "mean"
    if fmt == ".safetensors":
        written = _write_safetensors(out, table, strings, model, pooling, notes)
    else:
        written = _write_parquet(out, table, strings, model, pooling, notes)
    return {"out": [str(p) for p in written], "frames": len(records), "slot": slot, "version": version,
            "pooling": pooling, "dim": int(emb["target"].shape[-1]), "nodes": nodes, "notes": notes}


def _nodes(store: Store, node: str, all_nodes: bool) -> list[str]:
    if not all_nodes:
        return [node]
    names = sorted({rel.split("/")[1] for rel in store.list("manifests", ".jsonl") if rel.count("/") >= 2})
    return names or [node]


def _write_safetensors(out: Path, table: dict[str, np.ndarray], strings: dict[str, list[str]],
                       model: dict, pooling: str, notes: list[str]) -> list[Path]:
    from safetensors.numpy import save

    sidecar = out.with_name(out.name + ".json")
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "slot": model["slot"],
            "version": model["version"], "pooling": pooling, "sidecar": sidecar.name}
    side = {"format": FORMAT, "format_version": FORMAT_VERSION, "rows": len(strings["frame_id"]),
            "model": model, "pooling": pooling, "tensors": {k: {"shape": list(v.shape), "dtype": str(v.dtype),
                                                               "description": COLUMNS[k]}
                                                           for k, v in table.items()},
            "columns": strings, "notes": notes}
    data = canonical_header(save({k: np.ascontiguousarray(v) for k, v in table.items()},
                                 metadata={k: str(v) for k, v in meta.items()}))
    _atomic_write(sidecar, json.dumps(side, indent=1).encode())
    _atomic_write(out, data)
    return [out, sidecar]


def _write_parquet(out: Path, table: dict[str, np.ndarray], strings: dict[str, list[str]],
                   model: dict, pooling: str, notes: list[str]) -> list[Path]:
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    cols: dict[str, Any] = {k: pa.array(v) for k, v in strings.items() if k != "captured_at_iso"}
    cols["captured_at"] = pa.array((table["captured_at"] * 1e6).round().astype("int64"),
                                   type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    for i, name in enumerate(("pan", "tilt", "zoom")):
        cols[name] = pa.array(table["pose"][:, i])
    for k in ("sim_time", "step", "action", "predicted_surprise", "observed_error", "has_prediction"):
        cols[k] = pa.array(table[k])
    for k in ("context", "target", "predictor"):
        v = table[k]
        cols[k] = pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), int(np.prod(v.shape[1:])))
    shape = list(table["target"].shape[1:])
    arrow = pa.table(cols).replace_schema_metadata({
        "ptzjepa": json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, "model": model,
                               "pooling": pooling, "embedding_shape": shape, "columns": COLUMNS,
                               "notes": notes})})
    sink = pa.BufferOutputStream()
    pq.write_table(arrow, sink)
    _atomic_write(out, sink.getvalue().to_pybytes())
    return [out]
