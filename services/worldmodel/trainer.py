"""The bounded training loop: `cfg.steps` optimiser steps of `train_step`, grouped in epochs.

Every run ends for a stated reason: "steps" (the job's step budget, the normal end), "epochs" or
"plateau" (optional extra bounds, counted within the run), "time_budget" (the wall-clock safety
cap: logged as a warning and reported, since it makes the run's length depend on the machine's
load) or "stopped" (a stop request or a lost lease). There is no unbounded loop, an empty data set
fails at once (the original looped forever on one), and the loop reports progress through a
callback that the job layer turns into metrics and events. The step counter of the state is the
slot's lifetime position in the schedules; a resumed state continues it.
"""

from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)

STOP_REASONS = ("steps", "epochs", "plateau", "time_budget", "stopped")


@dataclass
class FitResult:
    stop_reason: str
    epoch_losses: list[float]    # this run's completed epochs
    epochs: int                  # epochs completed in this run
    steps: int                   # optimiser steps of this run
    lifetime_steps: int          # the state's step counter at the end (all runs of the slot)
    seconds: float
    transitions: int             # one-step + rollout transitions trained on in this run
    final_loss: float | None     # last epoch's mean loss; a run shorter than an epoch: its mean
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
    """Run `cfg.steps` steps on `data` (fewer if another bound fires). Pass `state` (from a
    resumable checkpoint) to continue its lifetime step counter, optimiser and generator.

    progress receives dicts: {"kind": "step", "epoch", "step", "schedule_steps", **metrics} after each
    step (`step` is the lifetime counter, `schedule_steps` the schedule's length) and {"kind":
    "epoch", "epoch", "loss", "elapsed_s"} after each epoch. should_stop is polled before every
    step; returning True ends the run with reason "stopped".
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    sampler = WindowSampler(data, model.cfg.encoder.img_size, cfg.window_len, cfg.windows_per_batch)
    steps_per_epoch = cfg.steps_per_epoch or sampler.steps_per_epoch()
    if state is None:
        state = make_train_state(model, cfg)
    elif state.model is not model:
        raise ValueError("the resumed state belongs to a different model object")
    state.epoch_losses = []
    start = clock()
    transitions, run_steps, run_epochs = 0, 0, 0
    reason: str | None = None
    epoch_total, epoch_count = 0.0, 0
    while reason is None:
        if run_steps >= cfg.steps:
            reason = "steps"
        elif should_stop is not None and should_stop():
            reason = "stopped"
        elif cfg.time_budget_s is not None and clock() - start >= cfg.time_budget_s:
            reason = "time_budget"
            log.warning("world-model training hit its time cap of %.0f s after %d of %d steps",
                        cfg.time_budget_s, run_steps, cfg.steps)
        if reason is not None:
            break
        metrics = train_step(state, sampler.sample(state.generator), cfg)
        epoch_total += metrics["loss"]
        epoch_count += 1
        run_steps += 1
        transitions += metrics["transitions"]
        if progress is not None:
            progress({"kind": "step", "epoch": state.epoch, "step": state.step,
                      "schedule_steps": state.schedule_steps, **metrics})
        if epoch_count < steps_per_epoch:
            continue
        state.epoch += 1
        run_epochs += 1
        state.epoch_losses.append(epoch_total / epoch_count)
        epoch_total, epoch_count = 0.0, 0
        if progress is not None:
            progress({"kind": "epoch", "epoch": state.epoch, "loss": state.epoch_losses[-1],
                      "elapsed_s": clock() - start})
        if cfg.epochs is not None and run_epochs >= cfg.epochs:
            reason = "epochs"
        elif plateaued(state.epoch_losses, cfg.patience, cfg.plateau_rel):
            reason = "plateau"
    state.model.eval()
    # A partial epoch is not an epoch (no loss recorded, no plateau test); it gives the final
    # loss only of a run too short for a whole one.
    final = (state.epoch_losses[-1] if state.epoch_losses
             else epoch_total / epoch_count if epoch_count else None)
    return FitResult(stop_reason=reason, epoch_losses=list(state.epoch_losses), epochs=run_epochs,
                     steps=run_steps, lifetime_steps=state.step, seconds=clock() - start,
                     transitions=transitions, final_loss=final, state=state)
