"""World-model files: safetensors (no pickle, ever) with the config embedded as JSON metadata.

A file alone rebuilds its model: the metadata holds the format name and version, the kind, the
dtype and the full WorldModelConfig. Anything unexpected (not safetensors, truncated, another
format, a config this version cannot build, missing or extra tensors, wrong shapes) raises
CheckpointError with a message saying what is wrong; nothing is half-loaded.

Kinds:
- "share": what dreaming and acting need, the target encoder, predictor, surprise heads and the
  bootstrap ensemble (when the config has one), optionally in fp16 (the paper preset is ~55 MB in
  fp16). The context encoder is not stored: training continued from a shared model starts its
  context encoder from the target encoder (the EMA weights, the better of the two).
- "resume": every module in fp32; services/worldmodel/checkpoint.py adds the optimiser state.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from shared.models.config import ConfigError, WorldModelConfig
from shared.models.world_model import WorldModel
from shared.tensorfile import canonical_header

FORMAT = "ptzjepa.world_model"
FORMAT_VERSION = "1"
# "ensemble" is None in a model without the bootstrap ensemble: such a model stores no tensors for it.
SHARE_PARTS = ("target_encoder", "predictor", "surprise", "ensemble")
ALL_PARTS = ("encoder", "target_encoder", "predictor", "surprise", "ensemble")


class CheckpointError(ValueError):
    """A world-model file that cannot be used, with the reason."""


def model_tensors(model: WorldModel, parts=SHARE_PARTS, fp16: bool = False) -> dict[str, torch.Tensor]:
    out = {}
    for part in present_parts(model, parts):
        for k, v in getattr(model, part).state_dict().items():
            t = v.detach().cpu()
            if fp16 and t.is_floating_point():
                t = t.to(torch.float16)
            out[f"{part}.{k}"] = t.contiguous()
    return out


def present_parts(model: WorldModel, parts) -> list[str]:
    """The parts of `parts` that `model` has (the ensemble only when its config has heads)."""
    return [p for p in parts if getattr(model, p) is not None]


def to_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """A safetensors file of `tensors` with `metadata`, byte for byte the same for the same input
    (see `canonical_header`), so that a file's content hash names its content."""
    return canonical_header(st_save(tensors, metadata={k: str(v) for k, v in metadata.items()}))


def read_header(data: bytes, error: type[Exception] = CheckpointError) -> dict:
    """The safetensors JSON header, checked against the file's length (catches truncation).
    Every file kind of ptzjepa is safetensors: a kind's loader passes its own `error` class, so
    that a bad file of that kind raises that kind's error."""
    if len(data) < 8:
        raise error(f"not a safetensors file: only {len(data)} bytes")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8 or n > 100_000_000:
        raise error("not a safetensors file or truncated: header runs past the end")
    try:
        header = json.loads(data[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"corrupt safetensors header: {e}") from e
    if not isinstance(header, dict):
        raise error("corrupt safetensors header: not a JSON object")
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"),
                  default=0)
    except (TypeError, KeyError, ValueError, IndexError):
        raise error("corrupt safetensors header: bad tensor entries") from None
    if 8 + n + end != len(data):
        raise error(f"truncated or padded file: expected {8 + n + end} bytes, got {len(data)}")
    return header


def read_metadata(data: bytes, file_format: str, version: str, what: str,
                  error: type[Exception] = CheckpointError) -> dict:
    """The metadata of a safetensors file, checked to be of `file_format` at `version`; `what`
    names the file kind in the errors ("world-model": "not a world-model file ...")."""
    meta = dict(read_header(data, error).get("__metadata__") or {})
    article = "an" if what[:1] in "aeiou" else "a"
    if meta.get("format") != file_format:
        raise error(f"not {article} {what} file (format {meta.get('format')!r}, "
                    f"expected {file_format!r})")
    if meta.get("format_version") != version:
        raise error(f"unsupported {what} format version {meta.get('format_version')!r} "
                    f"(this code reads {version})")
    return meta


def from_bytes(data: bytes, kind: str | None = None,
               ) -> tuple[dict[str, torch.Tensor], dict, WorldModelConfig]:
    """(tensors, metadata, config) from a world-model file's bytes, checked."""
    meta = read_metadata(data, FORMAT, FORMAT_VERSION, "world-model")
    if kind is not None and meta.get("kind") != kind:
        raise CheckpointError(f"expected a {kind!r} checkpoint, got {meta.get('kind')!r}")
    try:
        cfg = WorldModelConfig.from_json(meta.get("config", ""))
    except ConfigError as e:
        raise CheckpointError(f"the embedded config cannot be built: {e}") from e
    try:
        tensors = st_load(data)
    except Exception as e:  # safetensors raises its own error type for malformed data
        raise CheckpointError(f"cannot read tensors: {e}") from e
    return tensors, meta, cfg


def load_parts(model: WorldModel, tensors: dict[str, torch.Tensor], parts) -> None:
    """Copy `tensors` into `model`'s `parts`, requiring exactly the expected keys and shapes."""
    expected = model_tensors(model, parts)
    missing = sorted(expected.keys() - tensors.keys())
    extra = sorted(k for k in tensors.keys() - expected.keys() if k.split(".")[0] in ALL_PARTS)
    if missing or extra:
        raise CheckpointError(f"tensors do not match the config: missing {missing[:5]}"
                              f"{' ...' if len(missing) > 5 else ''}, unexpected {extra[:5]}"
                              f"{' ...' if len(extra) > 5 else ''}")
    for k, ref in expected.items():
        if tensors[k].shape != ref.shape:
            raise CheckpointError(f"tensor {k} has shape {tuple(tensors[k].shape)}, "
                                  f"the config needs {tuple(ref.shape)}")
        if not torch.isfinite(tensors[k].float()).all():
            raise CheckpointError(f"tensor {k} holds NaN or infinite values")
    for part in present_parts(model, parts):
        sd = {k[len(part) + 1:]: v.to(ref_dtype(getattr(model, part), k[len(part) + 1:]))
              for k, v in tensors.items() if k.startswith(part + ".")}
        getattr(model, part).load_state_dict(sd, strict=True)


def ref_dtype(module: torch.nn.Module, key: str) -> torch.dtype:
    return module.state_dict()[key].dtype


def share_bytes(model: WorldModel, fp16: bool = False, extra: dict[str, str] | None = None) -> bytes:
    """A sharing checkpoint of `model` as bytes (for stores that write bytes atomically)."""
    meta = {**(extra or {}), "format": FORMAT, "format_version": FORMAT_VERSION, "kind": "share",
            "dtype": "float16" if fp16 else "float32", "config": model.cfg.to_json()}
    return to_bytes(model_tensors(model, SHARE_PARTS, fp16), meta)


def model_from_bytes(data: bytes, device: str | torch.device = "cpu") -> WorldModel:
    """Rebuild a model from a "share" or "resume" file's bytes (fp32, eval mode)."""
    tensors, meta, cfg = from_bytes(data)
    model = WorldModel(cfg)
    if meta.get("kind") == "share":
        load_parts(model, tensors, SHARE_PARTS)
        model.encoder.load_state_dict(model.target_encoder.state_dict())
    elif meta.get("kind") == "resume":
        load_parts(model, tensors, ALL_PARTS)
    else:
        raise CheckpointError(f"unknown checkpoint kind {meta.get('kind')!r}")
    model.surprise.mark_ready()
    return model.to(device).eval()


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_world_model(model: WorldModel, path: str | os.PathLike, fp16: bool = False,
                     extra: dict[str, str] | None = None) -> int:
    """Write a sharing checkpoint atomically; returns its size in bytes."""
    data = share_bytes(model, fp16, extra)
    atomic_write(path, data)
    return len(data)


def load_world_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> WorldModel:
    """Rebuild a model from a checkpoint file alone (either kind)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read world-model file {path}: {e}") from e
    return model_from_bytes(data, device)
