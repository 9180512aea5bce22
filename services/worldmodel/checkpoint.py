"""Resumable training checkpoints: the whole model in fp32 plus AdamW state, counters, loss history
and the sampler's random state, in one safetensors file (no pickle). The world-model config is
embedded as in a sharing checkpoint; the training config is stored too, for the record.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from services.worldmodel.config import TrainConfig
from services.worldmodel.training import TrainState, make_optimizer
from shared.models.checkpoint import (
    ALL_PARTS,
    FORMAT,
    FORMAT_VERSION,
    CheckpointError,
    atomic_write,
    from_bytes,
    load_parts,
    model_tensors,
    to_bytes,
)
from shared.models.world_model import WorldModel

_OPT = "optim."


def resumable_bytes(state: TrainState, cfg: TrainConfig) -> bytes:
    tensors = model_tensors(state.model, ALL_PARTS)
    sd = state.optimizer.state_dict()
    for idx, per_param in sd["state"].items():
        for name, t in per_param.items():
            tensors[f"{_OPT}{idx}.{name}"] = torch.as_tensor(t).detach().cpu().contiguous()
    tensors["rng.generator"] = state.generator.get_state()
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": "resume",
            "dtype": "float32", "config": state.model.cfg.to_json(),
            "train_config": json.dumps(cfg.to_dict()),
            "optimizer_groups": json.dumps(sd["param_groups"]),
            "counters": json.dumps({"step": state.step, "epoch": state.epoch,
                                    "total_steps": state.total_steps,
                                    "epoch_losses": state.epoch_losses})}
    return to_bytes(tensors, meta)


def save_resumable(state: TrainState, cfg: TrainConfig, path: str | os.PathLike) -> int:
    """Write atomically; returns the size in bytes."""
    data = resumable_bytes(state, cfg)
    atomic_write(path, data)
    return len(data)


def state_from_bytes(data: bytes, cfg: TrainConfig, device: str | torch.device = "cpu") -> TrainState:
    """Rebuild model, optimiser and counters. `cfg` is the training config to continue with (its
    optimiser hyper-parameters are re-applied by the schedules at the next step)."""
    tensors, meta, wm_cfg = from_bytes(data, kind="resume")
    model = WorldModel(wm_cfg)
    load_parts(model, tensors, ALL_PARTS)
    model.surprise.mark_ready()
    model.to(device)
    try:
        groups = json.loads(meta["optimizer_groups"])
        counters = json.loads(meta["counters"])
        step, epoch, total = int(counters["step"]), int(counters["epoch"]), int(counters["total_steps"])
        losses = [float(x) for x in counters["epoch_losses"]]
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"resumable checkpoint has bad training metadata: {e}") from e
    opt = make_optimizer(model, cfg)
    n_params = sum(len(g["params"]) for g in opt.param_groups)
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in opt.param_groups]:
        raise CheckpointError("optimiser groups in the file do not match the model")
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        if key.startswith(_OPT):
            idx, name = key[len(_OPT):].split(".", 1)
            if not 0 <= int(idx) < n_params:
                raise CheckpointError(f"optimiser state for unknown parameter {idx}")
            state.setdefault(int(idx), {})[name] = t.to(device)
    try:
        opt.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"optimiser state does not fit the model: {e}") from e
    gen = torch.Generator()
    if "rng.generator" in tensors:
        gen.set_state(tensors["rng.generator"])
    return TrainState(model=model, optimizer=opt, total_steps=total, step=step, epoch=epoch,
                      epoch_losses=losses, generator=gen)


def load_resumable(path: str | os.PathLike, cfg: TrainConfig,
                   device: str | torch.device = "cpu") -> TrainState:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from e
    return state_from_bytes(data, cfg, device)
