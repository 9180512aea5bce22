"""World-model files rebuild from the file alone, and bad files fail loudly."""

from __future__ import annotations

import json

import pytest
import torch

from shared.models import WorldModelConfig, build_world_model
from shared.models.checkpoint import (
    CheckpointError,
    load_world_model,
    model_from_bytes,
    read_header,
    save_world_model,
    share_bytes,
    to_bytes,
)
from tests.support.tiny_models import tiny_config


def tiny() -> WorldModelConfig:
    return tiny_config(encoder_depth=2, predictor_depth=2, targets=("pred_error", "grad_norm"),
                       ensemble=2)


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
    p0, r0 = model.predict(s0, [[0, 0, 1], [5, 5, 2]], [[10, 0, 1], [5, 5, 3]], dt=[0.5, 2.0])
    p1, r1 = loaded.predict(s0, [[0, 0, 1], [5, 5, 2]], [[10, 0, 1], [5, 5, 3]], dt=[0.5, 2.0])
    assert torch.allclose(p0, p1, atol=tol) and torch.allclose(r0, r1, rtol=5e-2)
    # Sharing files carry no context encoder; it starts from the target encoder.
    for a, b in zip(loaded.encoder.parameters(), loaded.target_encoder.parameters(),
                    strict=True):
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


class OtherKindError(ValueError):
    """Stands for another file kind's own error class (as the agent's)."""


def _with_header(header: object, body: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + body


def test_read_header_raises_the_callers_error_class_with_the_reason():
    data = share_bytes(build_world_model(tiny()))
    assert read_header(data)["__metadata__"]["format"] == "ptzjepa.world_model"
    cases = {b"short": "only 5 bytes", data[:-1]: "truncated or padded",
             data + b"\0": "truncated or padded", b"\xff" * 8 + b"{}": "header runs past the end",
             _with_header([1]): "not a JSON object",
             _with_header({"w": {"dtype": "F32"}}): "bad tensor entries",
             _with_header({"w": {"data_offsets": [0, 4]}}, b"\0" * 4): None}
    for raw, reason in cases.items():
        if reason is None:
            assert "w" in read_header(raw, OtherKindError)
            continue
        with pytest.raises(OtherKindError, match=reason):
            read_header(raw, OtherKindError)
    with pytest.raises(CheckpointError, match="corrupt safetensors header"):
        read_header(len(b"{no").to_bytes(8, "little") + b"{no")


def test_a_file_written_before_time_loads_as_a_model_that_ignores_dt():
    """A sharing file whose config has no time fields (the format before dt conditioning) is read
    by the documented rule - time_features 0 - and predicts exactly what it predicted, for any dt;
    a time-aware file whose config claims no time input is refused (its tensors do not fit)."""
    import dataclasses

    base = tiny()
    model = build_world_model(base.replace(
        predictor=dataclasses.replace(base.predictor, time_features=0))).eval()
    data = share_bytes(model)
    cfg = json.loads(read_header(data)["__metadata__"]["config"])
    del cfg["predictor"]["time_features"], cfg["predictor"]["time_scale_s"]
    old = model_from_bytes(_rewrite(data, config=json.dumps(cfg))).eval()
    assert old.cfg.predictor.time_features == 0
    state = old.encode_state(torch.randint(0, 255, (2, 32, 32, 3), dtype=torch.uint8))
    poses = ([[0, 0, 1], [5, 5, 2]], [[10, 0, 1], [5, 5, 3]])
    want = model.predict(state, *poses, dt=0.0)
    for dt in (0.0, 3.0):
        got = old.predict(state, *poses, dt=dt)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    timed = share_bytes(build_world_model(base))
    cfg = json.loads(read_header(timed)["__metadata__"]["config"])
    del cfg["predictor"]["time_features"], cfg["predictor"]["time_scale_s"]
    with pytest.raises(CheckpointError, match="shape"):
        model_from_bytes(_rewrite(timed, config=json.dumps(cfg)))
