"""One training step of the world model, as a function of (state, batch, config).

What a step learns, per batch of windows (consecutive frames of one round):
1. one-step: every ordered pair (i, j) of a window, from the *context* encoder's tokens of frame i
   to the target encoder's layer-normed tokens of frame j (optionally on a random subset of cells).
   This is what trains the encoder; each frame is encoded once and reused by all its pairs.
2. rollout: from the *target-space* state of a window's first frame (the state the agent sees at
   run time), predict the next frames along the window, feeding predictions back in. This is what
   dreams do, so dreams and run time share one state space and multi-step error is trained.
3. surprise: small heads regress per-transition targets (own error, per-transition gradient
   magnitude) from detached predictor features.
4. ensemble (when `ensemble.heads` > 0): the bootstrap heads learn the same one-step and rollout
   targets from the detached predictor features, each on its own resample of the transitions.
Loss: smooth-L1 (each term a function of services.worldmodel.losses), plus a variance floor
against collapse. AdamW with warmup + cosine LR, cosine weight decay, EMA momentum ramp.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import torch

from services.worldmodel.config import TrainConfig
from services.worldmodel.losses import (
    ensemble_loss,
    one_step_loss,
    rollout_loss,
    surprise_loss,
    variance_floor,
)
from shared.models.world_model import WorldModel


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the weights are not worth keeping."""


@dataclass
class TrainState:
    """Everything a resumed run needs besides the data: model, optimiser, counters, history.

    `step` counts the slot's lifetime optimiser steps (it continues across jobs and is the position
    in the schedules); `schedule_steps` is the length of the lifelong schedule (the config's), not
    a bound: past it the schedules hold their floors. `epoch` counts the lifetime's completed
    epochs; `epoch_losses` holds the current job's (each job trains on different frames).
    """

    model: WorldModel
    optimizer: torch.optim.Optimizer
    schedule_steps: int
    step: int = 0
    epoch: int = 0
    epoch_losses: list[float] = field(default_factory=list)
    generator: torch.Generator = field(default_factory=torch.Generator)


def make_optimizer(model: WorldModel, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parts; no weight decay on biases and norms (standard for ViTs)."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad or name.startswith("target_encoder."):
            continue
        (decay if p.ndim >= 2 else no_decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay, "decay": True},
                              {"params": no_decay, "weight_decay": 0.0, "decay": False}],
                             lr=cfg.start_lr, betas=(0.9, 0.999))


def make_train_state(model: WorldModel, cfg: TrainConfig, schedule_steps: int | None = None) -> TrainState:
    """A fresh slot's state at lifetime step 0; the schedule spans `schedule_steps` (default
    `cfg.schedule_steps`)."""
    gen = torch.Generator()
    gen.manual_seed(cfg.seed)
    total = cfg.schedule_steps if schedule_steps is None else schedule_steps
    return TrainState(model=model, optimizer=make_optimizer(model, cfg),
                      schedule_steps=max(1, total), generator=gen)


def schedules(step: int, total: int, cfg: TrainConfig) -> tuple[float, float, float]:
    """(lr, weight decay, EMA momentum) at lifetime `step` of a schedule `total` steps long.

    Warm-up over the first `warmup_frac` of it, then a cosine to `final_lr`; weight decay follows
    a cosine and the momentum a linear ramp over all of it. From `total` on every value holds its
    end (`final_lr`, `final_weight_decay`, `ema_end`), so a lifelong slot keeps learning.
    """
    warm = max(1, int(cfg.warmup_frac * total))
    if step < warm:
        lr = cfg.start_lr + (cfg.lr - cfg.start_lr) * step / warm
    else:
        prog = min(1.0, (step - warm) / max(1, total - warm))
        lr = cfg.final_lr + 0.5 * (cfg.lr - cfg.final_lr) * (1 + math.cos(math.pi * prog))
    prog = min(1.0, step / total)
    wd = cfg.final_weight_decay + 0.5 * (cfg.weight_decay - cfg.final_weight_decay) * (
        1 + math.cos(math.pi * prog))
    mom = cfg.ema_start + (cfg.ema_end - cfg.ema_start) * prog
    return lr, wd, mom


def use_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    """bf16 autocast only where measured faster: CUDA with bf16 support. A CPU without native bf16
    matrix units (the 2-core AVX2 benchmark machine) would emulate it, so "auto" keeps CPUs in fp32
    (docs/worldmodel.md)."""
    if cfg.amp == "off":
        return False
    if cfg.amp == "bf16":
        return True
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def autocast(cfg: TrainConfig, device: torch.device):
    if use_bf16(cfg, device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def clip_gradients(model: WorldModel, opt: torch.optim.Optimizer, max_norm: float) -> None:
    """Clip the gradient norm of the optimised parameters, the bootstrap ensemble's apart: one
    norm over both would let the ensemble's gradients rescale the world model's step."""
    ens: set[int] = set() if model.ensemble is None else {id(p) for p in model.ensemble.parameters()}
    params = [p for g in opt.param_groups for p in g["params"]]
    torch.nn.utils.clip_grad_norm_([p for p in params if id(p) not in ens], max_norm)
    if ens:
        torch.nn.utils.clip_grad_norm_([p for p in params if id(p) in ens], max_norm)


def train_step(state: TrainState, batch: dict[str, torch.Tensor], cfg: TrainConfig) -> dict:
    """One optimisation step on `batch` (from WindowSampler.sample). Mutates `state`; returns
    plain-float metrics: loss (the world-model loss: one-step + weighted rollout; the surprise
    heads' and variance losses are reported apart so they cannot mask a plateau), loss_one_step,
    loss_rollout, loss_var, loss_stay, loss_surprise, ensemble_loss (the bootstrap heads'; 0 without
    them), lr, weight_decay, momentum, transitions, mean_error."""
    model, opt = state.model, state.optimizer
    model.train()
    dev = next(model.parameters()).device
    lr, wd, mom = schedules(state.step, state.schedule_steps, cfg)
    for g in opt.param_groups:
        g["lr"] = lr
        g["weight_decay"] = wd if g.get("decay") else 0.0

    x = batch["x"].to(dev)
    poses = batch["poses"].to(dev)
    n_win, w = poses.shape[:2]
    flat_poses = poses.reshape(n_win * w, -1)
    flat_times = batch["times"].reshape(n_win * w).to(dev)
    with autocast(cfg, dev):
        ctx = model.encode_context(x)
        tgt, pen = model.encode_target(x, return_penultimate=True)
        tgt = tgt.float()
        one = one_step_loss(model, ctx, tgt, flat_poses, flat_times, w, cfg, state.generator)
        loss_roll, rollout_steps = rollout_loss(model, tgt, flat_poses, flat_times, w, cfg,
                                                state.generator)
    groups = [one.transitions, *rollout_steps]
    surprise = surprise_loss(model, groups, pen)
    loss_ens = (ensemble_loss(model, groups, flat_times, cfg.seed, cfg)
                if model.ensemble is not None else torch.zeros((), device=dev))
    for i, log_value in surprise.log_targets:
        model.surprise.track(i, log_value)
    model.surprise.mark_ready()
    loss_var = (variance_floor(ctx, cfg.var_gamma) if cfg.var_weight > 0
                else torch.zeros((), device=dev))
    loss_wm = one.loss + cfg.rollout_weight * loss_roll
    loss = (loss_wm + cfg.stay_weight * one.loss_stay + cfg.var_weight * loss_var
            + cfg.surprise_weight * surprise.loss / len(groups) + loss_ens)

    if not torch.isfinite(loss):
        raise TrainingDiverged(f"loss is {loss.item()} at step {state.step}")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        clip_gradients(model, opt, cfg.grad_clip)
    opt.step()
    model.update_target(mom)
    state.step += 1
    all_err = torch.cat(surprise.errors)
    return {"loss": loss_wm.item(), "loss_one_step": one.loss.item(),
            "loss_rollout": loss_roll.item(), "loss_var": loss_var.item(),
            "loss_stay": one.loss_stay.item(),
            "loss_surprise": surprise.loss.item() / len(groups),
            "ensemble_loss": loss_ens.item(), "lr": lr, "weight_decay": wd,
            "momentum": mom, "transitions": int(all_err.numel()), "mean_error": float(all_err.mean())}
