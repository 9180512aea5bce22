"""One training step of the world model, as a function of (state, batch, config).

What a step learns, per batch of windows (consecutive frames of one round):
1. one-step: every ordered pair (i, j) of a window, from the *context* encoder's tokens of frame i
   to the target encoder's layer-normed tokens of frame j (optionally on a random subset of cells).
   This is what trains the encoder; each frame is encoded once and reused by all its pairs.
2. rollout: from the *target-space* state of a window's first frame (the state the agent sees at
   run time), predict the next frames along the window, feeding predictions back in. This is what
   dreams do, so dreams and run time share one state space and multi-step error is trained.
3. surprise: small heads regress per-transition targets (own error, ensemble disagreement,
   per-transition gradient magnitude) from detached predictor features.
Loss: smooth-L1. AdamW with warmup + cosine LR, cosine weight decay, EMA momentum ramp.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from services.worldmodel.config import TrainConfig
from shared.models.predictor import disagreement
from shared.models.surprise import EPS, grad_norm_targets, per_transition_error
from shared.models.world_model import WorldModel


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the weights are not worth keeping."""


@dataclass
class TrainState:
    """Everything a resumed run needs besides the data: model, optimiser, counters, history."""

    model: WorldModel
    optimizer: torch.optim.Optimizer
    total_steps: int
    step: int = 0
    epoch: int = 0
    epoch_losses: list[float] = field(default_factory=list)
    generator: torch.Generator = field(default_factory=torch.Generator)


def make_optimizer(model: WorldModel, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parts; no weight decay on biases and norms (standard for ViTs)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad or name.startswith("target_encoder."):
            continue
        (decay if p.ndim >= 2 else no_decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay, "decay": True},
                              {"params": no_decay, "weight_decay": 0.0, "decay": False}],
                             lr=cfg.start_lr, betas=(0.9, 0.999))


def make_train_state(model: WorldModel, cfg: TrainConfig, total_steps: int) -> TrainState:
    gen = torch.Generator()
    gen.manual_seed(cfg.seed)
    return TrainState(model=model, optimizer=make_optimizer(model, cfg),
                      total_steps=max(1, total_steps), generator=gen)


def schedules(step: int, total: int, cfg: TrainConfig) -> tuple[float, float, float]:
    """(lr, weight decay, EMA momentum) at `step` of `total`."""
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
    """bf16 autocast only where measured faster: CUDA with bf16 support. On the 2-core AVX2 CPU it
    was slower than fp32 (docs/worldmodel.md), so "auto" keeps CPUs in fp32."""
    if cfg.amp == "off":
        return False
    if cfg.amp == "bf16":
        return True
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def autocast(cfg: TrainConfig, device: torch.device):
    if use_bf16(cfg, device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _pair_table(w: int, n_windows: int) -> torch.Tensor:
    """(W*w, w-1) flat frame indices of the targets of each source frame (its window's others)."""
    others = torch.tensor([[b for b in range(w) if b != a] for a in range(w)])
    base = (torch.arange(n_windows) * w)[:, None, None]
    return (base + others[None]).reshape(n_windows * w, w - 1)


def _gather_cells(tokens: torch.Tensor, qi: torch.Tensor | None) -> torch.Tensor:
    """tokens (S, T, N, D) -> (S, T, K, D) at cell indices qi (S, T, K)."""
    if qi is None:
        return tokens
    return torch.gather(tokens, 2, qi[..., None].expand(*qi.shape, tokens.shape[-1]))


def train_step(state: TrainState, batch: dict[str, torch.Tensor], cfg: TrainConfig) -> dict:
    """One optimisation step on `batch` (from WindowSampler.sample). Mutates `state`; returns
    plain-float metrics: loss (the world-model loss: one-step + weighted rollout; the surprise
    heads' and variance losses are reported apart so they cannot mask a plateau), loss_one_step,
    loss_rollout, loss_var, loss_stay, loss_surprise, lr, weight_decay, momentum, transitions,
    mean_error."""
    model, opt = state.model, state.optimizer
    model.train()
    dev = next(model.parameters()).device
    lr, wd, mom = schedules(state.step, state.total_steps, cfg)
    for g in opt.param_groups:
        g["lr"] = lr
        g["weight_decay"] = wd if g.get("decay") else 0.0

    x = batch["x"].to(dev)
    poses = batch["poses"].to(dev)
    n_win, w = poses.shape[:2]
    flat_poses = poses.reshape(n_win * w, -1)
    predictor = model.predictor
    n_queries = predictor.n_queries
    targets = model.cfg.surprise.targets
    groups = []  # (pred, trunk, log_s, true tokens, target frame index (S, T), cells)

    with autocast(cfg, dev):
        ctx = model.encode_context(x)
        tgt, pen = model.encode_target(x, return_penultimate=True)
        tgt = tgt.float()

        # 1. one-step pairs from context tokens, plus (stay_weight > 0) each frame holding still
        #    as one more transition of the same call (it shares the source's keys and values).
        table = _pair_table(w, n_win).to(dev)
        stay = cfg.stay_weight > 0
        if stay:
            table = torch.cat([table, torch.arange(n_win * w, device=dev)[:, None]], dim=1)
        pf = flat_poses[:, None].expand(-1, table.shape[1], -1)
        pt = flat_poses[table]
        qi = None
        if cfg.train_queries is not None and cfg.train_queries < n_queries:
            qi = torch.rand(*table.shape, n_queries, generator=state.generator).argsort(-1)
            qi = qi[..., :cfg.train_queries].to(dev)
        pred, trunk, log_s = model.forward_predictor(ctx, pf, pt, qi)
        cells = predictor.cells_of(qi)
        true = _gather_cells(tgt[table], cells)
        loss_stay = torch.zeros((), device=dev)
        if stay:
            loss_stay = F.smooth_l1_loss(pred[:, -1:].float(), true[:, -1:],
                                         beta=cfg.smooth_l1_beta)
            pred, trunk, log_s, true, table = (pred[:, :-1], trunk[:, :-1], log_s[:, :-1],
                                               true[:, :-1], table[:, :-1])
            cells = None if cells is None else cells[:, :-1]
        loss_one = F.smooth_l1_loss(pred.float(), true, beta=cfg.smooth_l1_beta)
        groups.append((pred, trunk, log_s, true, table, cells))

        # 2. rollouts from target-space states along windows (half of them backwards).
        loss_roll = torch.zeros((), device=dev)
        horizon = min(cfg.rollout_horizon, w - 1)
        if horizon > 0:
            n_chain = min(n_win, cfg.rollout_chains or n_win)
            order = torch.arange(w).repeat(n_chain, 1)
            flip = torch.rand(n_chain, generator=state.generator) < 0.5
            order[flip] = order[flip].flip(1)
            frames = (order + (torch.arange(n_chain) * w)[:, None]).to(dev)
            s = tgt[frames[:, 0]]
            for h in range(1, horizon + 1):
                p_from = flat_poses[frames[:, h - 1]][:, None]
                p_to = flat_poses[frames[:, h]][:, None]
                rq = None
                if not cfg.rollout_bptt and qi is not None:
                    # No backpropagation through the chain: the loss needs only the queried cells
                    # (as one-step pairs), the next source is the full prediction without a graph.
                    rq = torch.rand(n_chain, 1, n_queries, generator=state.generator).argsort(-1)
                    rq = rq[..., :cfg.train_queries].to(dev)
                p, tr, ls = model.forward_predictor(s, p_from, p_to, rq)
                r_cells = predictor.cells_of(rq)
                true_h = _gather_cells(tgt[frames[:, h]][:, None], r_cells)
                loss_roll = loss_roll + F.smooth_l1_loss(p.float(), true_h, beta=cfg.smooth_l1_beta)
                groups.append((p, tr, ls, true_h, frames[:, h:h + 1], r_cells))
                if h == horizon:
                    break
                if rq is not None:
                    with torch.no_grad():
                        s = model.predictor(s, p_from, p_to)[0][:, 0]
                else:
                    s = p[:, 0] if cfg.rollout_bptt else p[:, 0].detach()
            loss_roll = loss_roll / horizon

    # 3. surprise heads (fp32; on detached features, so they never bend the predictor).
    loss_s = torch.zeros((), device=dev)
    errors = []
    for pred, trunk, log_s, true, tindex, cells in groups:
        err = per_transition_error(pred.detach().float(), true)
        errors.append(err.flatten())
        for i, name in enumerate(targets):
            if name == "pred_error":
                value = err
            elif name == "disagreement":
                ens = predictor.ensemble_predictions(trunk.float(), pred.float(),
                                                     full=cells is None)
                # Bootstrap weights per (head, transition) keep the heads from agreeing trivially.
                keep = (torch.rand(ens.shape[:3], generator=state.generator) < 0.5).to(dev)
                head_err = F.smooth_l1_loss(ens, true.expand_as(ens), reduction="none")
                head_err = head_err.mean(dim=(-1, -2))
                loss_s = loss_s + (head_err * keep).sum() / keep.sum().clamp(min=1)
                value = disagreement(ens.detach())
            else:
                cells_flat = None if cells is None else cells.flatten(0, 1)
                value = grad_norm_targets(model.target_encoder, pen[tindex.flatten()].float(),
                                          pred.detach().float().flatten(0, 1),
                                          cells_flat).view(err.shape)
            # Huber in log space: early log-targets sit far from the heads' zero start, and a
            # squared loss there would swamp the world-model gradients.
            log_value = torch.log(value + EPS)
            model.surprise.track(i, log_value)
            loss_s = loss_s + F.smooth_l1_loss(log_s[..., i].float(), log_value)
    model.surprise.mark_ready()
    # Variance floor on the context tokens across the batch (VICReg's variance term): with few
    # frames the JEPA objective alone collapses to position-only tokens that every frame shares
    # (measured: held-out probe R^2 < 0, copy-baseline error near 0); this keeps frames apart.
    loss_var = torch.zeros((), device=dev)
    if cfg.var_weight > 0:
        std = torch.sqrt(ctx.float().var(dim=0) + 1e-4)
        loss_var = F.relu(cfg.var_gamma - std).mean()
    loss_wm = loss_one + cfg.rollout_weight * loss_roll
    loss = (loss_wm + cfg.stay_weight * loss_stay + cfg.var_weight * loss_var
            + cfg.surprise_weight * loss_s / len(groups))

    if not torch.isfinite(loss):
        raise TrainingDiverged(f"loss is {loss.item()} at step {state.step}")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]],
                                       cfg.grad_clip)
    opt.step()
    model.update_target(mom)
    state.step += 1
    all_err = torch.cat(errors)
    return {"loss": loss_wm.item(), "loss_one_step": loss_one.item(),
            "loss_rollout": loss_roll.item(), "loss_var": loss_var.item(),
            "loss_stay": loss_stay.item(),
            "loss_surprise": loss_s.item() / len(groups), "lr": lr, "weight_decay": wd, "momentum": mom,
            "transitions": int(all_err.numel()), "mean_error": float(all_err.mean())}
