"""The losses of one world-model training step, each a function of tensors, model, config and
the step's random generator; `training.train_step` composes them.

Every function that draws random numbers draws them from the generator it is given, in a fixed
order, so a step is reproducible from its seed. None of them changes the model: the surprise
heads' running log-offsets are returned as `SurpriseLoss.log_targets` for the caller to track.
The bootstrap ensemble's resample is no draw at all but a hash of each transition's frames (fixed
per transition, as a bootstrap of the data), so turning it on leaves every draw of the step, and
so the world model's training, as is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from services.worldmodel.config import TrainConfig
from shared.models.surprise import EPS, grad_norm_targets, per_transition_error, transition_keys
from shared.models.world_model import WorldModel

# Added to the variance before its square root, so a collapsed dimension keeps a gradient.
VARIANCE_EPS = 1e-4


@dataclass(frozen=True)
class Transitions:
    """One predictor call's transitions and what the surprise heads need of them."""

    pred: torch.Tensor                # (S, T, K, D) predicted tokens
    trunk: torch.Tensor               # (S, T, K, d) predictor features
    log_surprise: torch.Tensor        # (S, T, n_targets) the heads' predicted log-surprise
    true: torch.Tensor                # (S, T, K, D) target tokens at the same cells
    target_frames: torch.Tensor       # (S, T) flat batch index of each transition's target frame
    cells: torch.Tensor | None        # (S, T, K) cell indices; None: every cell, row-major
    source_frames: torch.Tensor       # (S, T) flat batch index of the frame it starts from


@dataclass(frozen=True)
class OneStepLoss:
    loss: torch.Tensor                # smooth-L1 over the one-step pairs
    loss_stay: torch.Tensor           # smooth-L1 of each frame holding still (0 when disabled)
    transitions: Transitions          # the pairs, without the stays


@dataclass(frozen=True)
class SurpriseLoss:
    loss: torch.Tensor                # summed over transition groups and surprise targets
    errors: list[torch.Tensor]        # per group, flat per-transition prediction errors
    log_targets: list[tuple[int, torch.Tensor]]  # (target index, log-target), in draw order


def pair_table(window_len: int, n_windows: int) -> torch.Tensor:
    """(W*w, w-1) flat frame indices of the targets of each source frame (its window's others)."""
    others = torch.tensor([[b for b in range(window_len) if b != a] for a in range(window_len)])
    base = (torch.arange(n_windows) * window_len)[:, None, None]
    return (base + others[None]).reshape(n_windows * window_len, window_len - 1)


def gather_cells(tokens: torch.Tensor, cells: torch.Tensor | None) -> torch.Tensor:
    """tokens (S, T, N, D) -> (S, T, K, D) at cell indices (S, T, K); None keeps every cell."""
    if cells is None:
        return tokens
    return torch.gather(tokens, 2, cells[..., None].expand(*cells.shape, tokens.shape[-1]))


def draw_queries(shape: tuple[int, ...], n_queries: int, keep: int, generator: torch.Generator,
                 device: torch.device) -> torch.Tensor:
    """(*shape, keep) distinct query indices per transition, uniformly drawn."""
    order = torch.rand(*shape, n_queries, generator=generator).argsort(-1)
    return order[..., :keep].to(device)


def queries_subsampled(model: WorldModel, cfg: TrainConfig) -> bool:
    """Whether transitions are trained on a random subset of the predictor's queries."""
    return cfg.train_queries is not None and cfg.train_queries < model.predictor.n_queries


def pair_dt(flat_times: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """(S, T) signed seconds from source frame s to each of its targets `table[s]`, subtracted
    in float64 (capture times are POSIX seconds) and returned as float32."""
    return (flat_times[table] - flat_times[:, None]).float()


def one_step_loss(model: WorldModel, ctx: torch.Tensor, tgt: torch.Tensor,
                  flat_poses: torch.Tensor, flat_times: torch.Tensor, window_len: int,
                  cfg: TrainConfig, generator: torch.Generator) -> OneStepLoss:
    """Every ordered pair of frames of a window, from the context tokens `ctx` (W*w, N, D) of the
    source to the target tokens `tgt` of the other frame, each with its signed dt (pairs that
    look back in time are kept: the sign tells the directions apart). With stay_weight > 0 each
    frame also holds still (dt 0), as one more transition of the same predictor call (it shares
    the source's keys and values); the stays are split off, so they count in `loss_stay` only."""
    device = tgt.device
    n_frames = flat_poses.shape[0]
    table = pair_table(window_len, n_frames // window_len).to(device)
    stay = cfg.stay_weight > 0
    if stay:
        table = torch.cat([table, torch.arange(n_frames, device=device)[:, None]], dim=1)
    pose_from = flat_poses[:, None].expand(-1, table.shape[1], -1)
    pose_to = flat_poses[table]
    dt = pair_dt(flat_times, table)  # the stay column is the frame itself: dt 0
    queries = None
    if queries_subsampled(model, cfg):
        assert cfg.train_queries is not None
        queries = draw_queries(tuple(table.shape), model.predictor.n_queries, cfg.train_queries,
                               generator, device)
    pred, trunk, log_s = model.forward_predictor(ctx, pose_from, pose_to, dt, queries)
    cells = model.predictor.cells_of(queries)
    true = gather_cells(tgt[table], cells)
    loss_stay = torch.zeros((), device=device)
    if stay:
        loss_stay = F.smooth_l1_loss(pred[:, -1:].float(), true[:, -1:], beta=cfg.smooth_l1_beta)
        pred, trunk, log_s, true, table = (pred[:, :-1], trunk[:, :-1], log_s[:, :-1],
                                           true[:, :-1], table[:, :-1])
        cells = None if cells is None else cells[:, :-1]
    loss = F.smooth_l1_loss(pred.float(), true, beta=cfg.smooth_l1_beta)
    sources = torch.arange(n_frames, device=device)[:, None].expand_as(table)
    return OneStepLoss(loss, loss_stay,
                       Transitions(pred, trunk, log_s, true, table, cells, sources))


def _chain_frames(n_chains: int, window_len: int, generator: torch.Generator,
                  device: torch.device) -> torch.Tensor:
    """(chains, w) flat frame indices of each chain's window, half of them (at random) backwards."""
    order = torch.arange(window_len).repeat(n_chains, 1)
    flip = torch.rand(n_chains, generator=generator) < 0.5
    order[flip] = order[flip].flip(1)
    return (order + (torch.arange(n_chains) * window_len)[:, None]).to(device)


def rollout_loss(model: WorldModel, tgt: torch.Tensor, flat_poses: torch.Tensor,
                 flat_times: torch.Tensor, window_len: int, cfg: TrainConfig,
                 generator: torch.Generator) -> tuple[torch.Tensor, list[Transitions]]:
    """Rollouts from the target-space state of a window's first frame along the window, each
    prediction fed back as the next source, each step with its own signed dt. Returns the loss
    averaged over the horizon (0 when the horizon is 0) and one `Transitions` per step."""
    device = tgt.device
    n_windows = flat_poses.shape[0] // window_len
    loss = torch.zeros((), device=device)
    steps: list[Transitions] = []
    horizon = min(cfg.rollout_horizon, window_len - 1)
    if horizon <= 0:
        return loss, steps
    n_chains = min(n_windows, cfg.rollout_chains or n_windows)
    frames = _chain_frames(n_chains, window_len, generator, device)
    # Without backpropagation through the chain the loss needs only the queried cells (as the
    # one-step pairs), and the next source is the full prediction, computed without a graph.
    subsample = not cfg.rollout_bptt and queries_subsampled(model, cfg)
    state = tgt[frames[:, 0]]
    for h in range(1, horizon + 1):
        pose_from = flat_poses[frames[:, h - 1]][:, None]
        pose_to = flat_poses[frames[:, h]][:, None]
        dt = (flat_times[frames[:, h]] - flat_times[frames[:, h - 1]]).float()[:, None]
        queries = None
        if subsample:
            assert cfg.train_queries is not None
            queries = draw_queries((n_chains, 1), model.predictor.n_queries, cfg.train_queries,
                                   generator, device)
        pred, trunk, log_s = model.forward_predictor(state, pose_from, pose_to, dt, queries)
        cells = model.predictor.cells_of(queries)
        true = gather_cells(tgt[frames[:, h]][:, None], cells)
        loss = loss + F.smooth_l1_loss(pred.float(), true, beta=cfg.smooth_l1_beta)
        steps.append(Transitions(pred, trunk, log_s, true, frames[:, h:h + 1], cells,
                                 frames[:, :1]))
        if h == horizon:
            break
        if queries is not None:
            with torch.no_grad():
                state = model.predictor(state, pose_from, pose_to, dt)[0][:, 0]
        else:
            state = pred[:, 0] if cfg.rollout_bptt else pred[:, 0].detach()
    return loss / horizon, steps


def ensemble_loss(model: WorldModel, groups: list[Transitions], flat_times: torch.Tensor,
                  seed: int, cfg: TrainConfig) -> torch.Tensor:
    """The bootstrap ensemble's one-step loss, averaged over the transition groups: each head's
    smooth-L1 against the same targets as the main prediction, weighted per transition by that
    head's own Poisson draw (its bootstrap resample, fixed per transition under `seed`: a
    function of the two frames' capture times `flat_times`) and normalised by its weights' sum,
    then summed over heads (each head learns as if trained alone). On detached features only."""
    ens = model.ensemble
    assert ens is not None
    loss = torch.zeros((), device=groups[0].true.device)
    for group in groups:
        pred = model.ensemble_predictions(group.trunk.float(), group.pred.float(),
                                          full=group.cells is None)
        err = F.smooth_l1_loss(pred, group.true.expand_as(pred), reduction="none",
                               beta=cfg.smooth_l1_beta).mean(dim=(-1, -2))
        keys = transition_keys(flat_times, group.source_frames, group.target_frames)
        w = ens.bootstrap_weights(keys, seed).to(err.device)
        loss = loss + ((err * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp(min=1.0)).sum()
    return loss / len(groups)


def surprise_loss(model: WorldModel, groups: list[Transitions],
                  penultimate: torch.Tensor) -> SurpriseLoss:
    """The surprise heads regress each transition's targets (own error, per-transition gradient
    magnitude at the target encoder's `penultimate` tokens), in fp32 and from detached features,
    so they never bend the predictor."""
    loss = torch.zeros((), device=penultimate.device)
    errors: list[torch.Tensor] = []
    log_targets: list[tuple[int, torch.Tensor]] = []
    for group in groups:
        err = per_transition_error(group.pred.detach().float(), group.true)
        errors.append(err.flatten())
        for i, name in enumerate(model.cfg.surprise.targets):
            if name == "pred_error":
                value = err
            else:
                cells_flat = None if group.cells is None else group.cells.flatten(0, 1)
                value = grad_norm_targets(model.target_encoder,
                                          penultimate[group.target_frames.flatten()].float(),
                                          group.pred.detach().float().flatten(0, 1),
                                          cells_flat).view(err.shape)
            # Huber in log space: early log-targets sit far from the heads' zero start, and a
            # squared loss there would swamp the world-model gradients.
            log_value = torch.log(value + EPS)
            log_targets.append((i, log_value))
            loss = loss + F.smooth_l1_loss(group.log_surprise[..., i].float(), log_value)
    return SurpriseLoss(loss, errors, log_targets)


def variance_floor(ctx: torch.Tensor, gamma: float) -> torch.Tensor:
    """VICReg's variance term on the context tokens across the batch: with few frames the JEPA
    objective alone collapses to position-only tokens that every frame shares (measured: held-out
    probe R^2 < 0, copy-baseline error near 0); a floor of `gamma` per dimension keeps frames
    apart."""
    std = torch.sqrt(ctx.float().var(dim=0) + VARIANCE_EPS)
    return F.relu(gamma - std).mean()
