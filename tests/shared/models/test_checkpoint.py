"""World-model files rebuild from the file alone, and bad files fail loudly."""

from __future__ import annotations

import json

import pytest
import torch

from shared.models import EncoderConfig, PredictorConfig, SurpriseConfig, WorldModelConfig, build_world_model
from shared.models.checkpoint import (
    CheckpointError,
    load_world_model,
    model_from_bytes,
    read_header,
    save_world_model,
    share_bytes,
    to_bytes,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one intra-op thread is fastest, and immune to a busy machine's contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny() -> WorldModelConfig:
    return WorldModelConfig(
        encoder=EncoderConfig(img_size=32, patch_size=8, dim=32, depth=2, heads=2),
        predictor=PredictorConfig(dim=32, depth=2, heads=2),
        surprise=SurpriseConfig(targets=("pred_error", "disagreement"), hidden=16,
                                ensemble_size=2), name="tiny")


@pytest.mark.parametrize("fp16", [False, True])
def test_round_trip_from_file_alone(tmp_path, fp16):
    torch.manual_seed(0)
    model = build_world_model(tiny())
    path = tmp_path / "wm.safetensors"
    size = save_world_model(model, path, fp16=fp16, extra={"node": "n1"})
    assert path.stat().st_size == size
    assert not list(tmp_path.glob(".*tmp"))  # the temp file was renamed away
    loaded = load_world_model(path)
    assert loaded.cfg == model.cfg
    frames = torch.randint(0, 255, (2, 32, 32, 3), dtype=torch.uint8)
    s0, s1 = model.encode_state(frames), loaded.encode_state(frames)
    tol = 2e-2 if fp16 else 1e-6
    assert torch.allclose(s0, s1, atol=tol)
    p0, r0 = model.predict(s0, [[0, 0, 1], [5, 5, 2]], [[10, 0, 1], [5, 5, 3]])
    p1, r1 = loaded.predict(s0, [[0, 0, 1], [5, 5, 2]], [[10, 0, 1], [5, 5, 3]])
    assert torch.allclose(p0, p1, atol=tol) and torch.allclose(r0, r1, rtol=5e-2)
    # Sharing files carry no context encoder; it starts from the target encoder.
    for a, b in zip(loaded.encoder.parameters(), loaded.target_encoder.parameters()):
        assert torch.equal(a, b)
    assert read_header(path.read_bytes())["__metadata__"]["node"] == "n1"


def _rewrite(data: bytes, tensors=None, **meta_changes) -> bytes:
    from safetensors.torch import load
    meta = dict(read_header(data)["__metadata__"])
    meta.update(meta_changes)
    return to_bytes(load(data) if tensors is None else tensors, meta)


def test_bad_files_fail_with_clear_errors(tmp_path):
    model = build_world_model(tiny())
    data = share_bytes(model)
    with pytest.raises(CheckpointError, match="truncated"):
        model_from_bytes(data[:-7])
    with pytest.raises(CheckpointError, match="not a safetensors"):
        model_from_bytes(b"PK\x03\x04 a zip file, perhaps")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_world_model(tmp_path / "missing.safetensors")
    with pytest.raises(CheckpointError, match="format"):
        model_from_bytes(_rewrite(data, format="something.else"))
    with pytest.raises(CheckpointError, match="version"):
        model_from_bytes(_rewrite(data, format_version="99"))
    cfg = json.loads(read_header(data)["__metadata__"]["config"])
    cfg["encoder"]["dim"] = 48  # a different model than the tensors
    with pytest.raises(CheckpointError, match="shape"):
        model_from_bytes(_rewrite(data, config=json.dumps(cfg)))
    cfg = json.loads(read_header(data)["__metadata__"]["config"])
    cfg["encoder"]["colour"] = "blue"
    with pytest.raises(CheckpointError, match="config"):
        model_from_bytes(_rewrite(data, config=json.dumps(cfg)))
    with pytest.raises(CheckpointError, match="config"):
        model_from_bytes(_rewrite(data, config="{not json"))
    from safetensors.torch import load
    tensors = load(data)
    tensors.pop(next(k for k in tensors if k.startswith("predictor.")))
    with pytest.raises(CheckpointError, match="missing"):
        model_from_bytes(_rewrite(data, tensors=tensors))
    tensors = load(data)
    tensors["predictor.extra_weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match="unexpected"):
        model_from_bytes(_rewrite(data, tensors=tensors))
    tensors = load(data)
    k = next(k for k in tensors if k.startswith("target_encoder."))
    tensors[k] = torch.full_like(tensors[k], float("nan"))
    with pytest.raises(CheckpointError, match="NaN"):
        model_from_bytes(_rewrite(data, tensors=tensors))
