"""Resumable training checkpoints: the whole model in fp32 plus AdamW state, counters, loss history
and the sampler's random state, in one safetensors file (no pickle). The world-model config is
embedded as in a sharing checkpoint; the training config is stored too, for the record.

The counters' `step` is the slot's lifetime step, its position in the lifelong schedules
(`"schedule": "lifelong"` marks such files). Files written before the schedules were lifelong
counted only their own job's steps; `state_from_bytes` reads them only when told the lifetime
step (`lifetime_step`, which the world-model phase sums over the version lineage), and refuses
them otherwise rather than restart or misplace the schedule.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
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
SCHEDULE = "lifelong"  # the counters' marker: `step` is the slot's lifetime step


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
            "counters": json.dumps({"schedule": SCHEDULE, "step": state.step, "epoch": state.epoch,
                                    "schedule_steps": state.schedule_steps,
                                    "epoch_losses": state.epoch_losses})}
    return to_bytes(tensors, meta)


def save_resumable(state: TrainState, cfg: TrainConfig, path: str | os.PathLike) -> int:
    """Write atomically; returns the size in bytes."""
    data = resumable_bytes(state, cfg)
    atomic_write(path, data)
    return len(data)


def state_from_bytes(data: bytes, cfg: TrainConfig, device: str | torch.device = "cpu", *,
                     lifetime_step: Callable[[], int] | None = None) -> TrainState:
    """Rebuild model, optimiser and counters. `cfg` is the training config to continue with: its
    optimiser hyper-parameters are re-applied by the schedules at the next step, and its
    `schedule_steps` is the schedule's length from now on. `lifetime_step` is called only for a
    file from before lifelong schedules (see the module's docstring)."""
    tensors, meta, wm_cfg = from_bytes(data, kind="resume")
    model = WorldModel(wm_cfg)
    load_parts(model, tensors, ALL_PARTS)
    model.surprise.mark_ready()
    model.to(device)
    try:
        groups = json.loads(meta["optimizer_groups"])
        counters = json.loads(meta["counters"])
        step, epoch = int(counters["step"]), int(counters["epoch"])
        losses = [float(x) for x in counters["epoch_losses"]]
        schedule = counters.get("schedule")
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"resumable checkpoint has bad training metadata: {e}") from e
    if schedule != SCHEDULE:
        if schedule is not None or lifetime_step is None:
            raise CheckpointError(
                "resumable checkpoint from before lifelong schedules: its step counter counts only "
                "its own job, not the slot's lifetime; resume it through the world-model phase "
                "(which sums the lineage's steps) or pass lifetime_step")
        step = int(lifetime_step())
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
    return TrainState(model=model, optimizer=opt, schedule_steps=cfg.schedule_steps, step=step,
                      epoch=epoch, epoch_losses=losses, generator=gen)


def load_resumable(path: str | os.PathLike, cfg: TrainConfig, device: str | torch.device = "cpu", *,
                   lifetime_step: Callable[[], int] | None = None) -> TrainState:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from e
    return state_from_bytes(data, cfg, device, lifetime_step=lifetime_step)
