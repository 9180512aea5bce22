"""The bounded training loop: epochs of `train_step` until a stop condition holds.

Every run ends for a stated reason ("epochs", "plateau", "time_budget", "stopped"); there is no
unbounded loop, an empty data set fails at once (the original looped forever on one), and the
loop reports progress through a callback that the job layer turns into metrics and events.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from services.worldmodel.config import TrainConfig
from services.worldmodel.data import FrameDataset, WindowSampler
from services.worldmodel.training import TrainState, make_train_state, train_step
from shared.models.world_model import WorldModel

Progress = Callable[[dict], None]
ShouldStop = Callable[[], bool]

STOP_REASONS = ("epochs", "plateau", "time_budget", "stopped")
SIZE_AFTER_STEPS = 3  # steps timed before a time-budgeted run starts sizing its schedules


@dataclass
class FitResult:
    stop_reason: str
    epoch_losses: list[float]
    epochs: int                  # epochs completed in total (this run and earlier ones)
    steps: int
    seconds: float
    transitions: int             # one-step + rollout transitions trained on in this run
    state: TrainState = field(repr=False)

    @property
    def transitions_per_s(self) -> float:
        return self.transitions / self.seconds if self.seconds > 0 else 0.0


def plateaued(losses: list[float], patience: int, rel: float) -> bool:
    """The original's test, made scale-free: |last - mean(previous `patience`)| <= rel * mean."""
    if patience <= 0 or len(losses) <= patience:
        return False
    prev = losses[-1 - patience:-1]
    mean = sum(prev) / len(prev)
    return abs(losses[-1] - mean) <= rel * abs(mean)


def fit(model: WorldModel, data: FrameDataset, cfg: TrainConfig, *,
        state: TrainState | None = None, progress: Progress | None = None,
        should_stop: ShouldStop | None = None,
        clock: Callable[[], float] = time.monotonic) -> FitResult:
    """Train `model` on `data` until a bound. Pass `state` (from a resumable checkpoint) to resume.

    progress receives dicts: {"kind": "step", "epoch", "step", "total_steps", **metrics} after each
    step and {"kind": "epoch", "epoch", "loss", "elapsed_s"} after each epoch. should_stop is
    polled before every step; returning True ends the run with reason "stopped".
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    sampler = WindowSampler(data, model.cfg.encoder.img_size, cfg.window_len, cfg.windows_per_batch)
    steps_per_epoch = cfg.steps_per_epoch or sampler.steps_per_epoch()
    fresh = state is None
    if state is None:
        state = make_train_state(model, cfg, cfg.epochs * steps_per_epoch)
    elif state.model is not model:
        raise ValueError("the resumed state belongs to a different model object")
    full_total = state.total_steps
    start = clock()
    transitions = 0
    reason = "epochs"
    run_steps = 0
    while state.epoch < cfg.epochs:
        total, count = 0.0, 0
        for _ in range(steps_per_epoch):
            if should_stop is not None and should_stop():
                reason = "stopped"
                break
            if cfg.time_budget_s is not None:
                elapsed = clock() - start
                if elapsed >= cfg.time_budget_s:
                    reason = "time_budget"
                    break
                if fresh and run_steps >= SIZE_AFTER_STEPS and elapsed > 0:
                    # Size the LR / weight-decay / EMA schedules to the budget at the run's mean
                    # step time so far (re-estimated every step: the load on a shared machine
                    # changes): a time-budget stop otherwise cuts the cosine mid-way, with the
                    # LR high and the EMA far from 1. Never beyond the epochs' own length.
                    fits = int((cfg.time_budget_s - elapsed) * run_steps / elapsed)
                    state.total_steps = max(state.step + 1, min(full_total, state.step + fits))
            metrics = train_step(state, sampler.sample(state.generator), cfg)
            total += metrics["loss"]
            count += 1
            run_steps += 1
            transitions += metrics["transitions"]
            if progress is not None:
                progress({"kind": "step", "epoch": state.epoch, "step": state.step,
                          "total_steps": state.total_steps, **metrics})
        if count < steps_per_epoch:
            break  # a partial epoch is not an epoch: no loss recorded, no plateau test
        state.epoch += 1
        state.epoch_losses.append(total / count)
        if progress is not None:
            progress({"kind": "epoch", "epoch": state.epoch, "loss": state.epoch_losses[-1],
                      "elapsed_s": clock() - start})
        if plateaued(state.epoch_losses, cfg.patience, cfg.plateau_rel):
            reason = "plateau"
            break
    state.model.eval()
    return FitResult(stop_reason=reason, epoch_losses=list(state.epoch_losses), epochs=state.epoch,
                     steps=state.step, seconds=clock() - start, transitions=transitions, state=state)
