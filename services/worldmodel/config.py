"""World-model training settings (frozen); the `cpu` and `paper` values live in shared.presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from shared.presets import TRAIN as TRAIN_PRESETS


@dataclass(frozen=True)
class TrainConfig:
    # Bounds of one training job (fit call), whichever comes first. `steps` is the budget: the
    # optimiser steps a job runs, so that what a job learns does not depend on the machine's load.
    # `time_budget_s` is a safety cap only (a job that hits it is reported as "time_budget"); the
    # epoch and plateau bounds are optional extras, counted within the job.
    steps: int = 300
    time_budget_s: float | None = None
    epochs: int | None = None         # most epochs per job (None: no epoch bound)
    patience: int = 0                 # epochs compared for the plateau test; 0 disables it
    plateau_rel: float = 0.002        # |last - mean(previous `patience`)| <= rel * mean -> plateau
    steps_per_epoch: int | None = None  # None: about one pass over the frames per epoch
    # Batches: `windows_per_batch` windows of `window_len` consecutive frames of one round; every
    # ordered pair inside a window is a one-step transition from the context encoder.
    window_len: int = 4
    windows_per_batch: int = 8
    train_queries: int | None = None  # queries (cells, at query_stride 1) per transition (None: all)
    # Rollouts from target-space states along each window (what dreams do), fed back into the
    # predictor; `rollout_bptt` backpropagates through the chain.
    rollout_horizon: int = 3
    rollout_chains: int | None = None  # windows per batch that get a rollout (None: all)
    rollout_weight: float = 1.0
    rollout_bptt: bool = True
    surprise_weight: float = 1.0
    # Holding still: each frame of a batch also predicts itself at its own pose (zero move, zero
    # time), so the predictor learns that a camera that does not move sees no change but what
    # moves by itself. Without it, a predictor trained on jump-heavy agent data hallucinated
    # change at standing views of a static scene (docs/experiments.md). The surprise heads do not
    # learn from these pairs (no time passes in them, so they hold no dynamics).
    # On in `cpu`; off in `paper`, where the 8th transition per source raised the peak memory
    # on this 2-core CPU from 2,428 to 2,686 MB, too close to the 2,750 MB target.
    stay_weight: float = 0.0
    var_weight: float = 1.0           # anti-collapse variance floor on context tokens (0: off)
    var_gamma: float = 1.0
    # Optimiser and the lifelong schedules (docs/worldmodel.md): over a slot's lifetime steps, one
    # warm-up (the first `warmup_frac` of `schedule_steps`), then a cosine from `lr` down to the
    # floor `final_lr` at `schedule_steps`, held from there on; weight decay and EMA momentum
    # follow one cosine / linear ramp over the same steps and are then held. The floors stay
    # learning (final_lr > 0, ema_end < 1): every cycle brings new views to learn.
    schedule_steps: int = 3000
    lr: float = 1e-3
    start_lr: float = 1e-4
    final_lr: float = 1e-4
    warmup_frac: float = 0.02
    weight_decay: float = 0.04
    final_weight_decay: float = 0.2
    ema_start: float = 0.996
    ema_end: float = 0.999
    grad_clip: float = 1.0
    smooth_l1_beta: float = 1.0
    # Execution.
    amp: str = "auto"                 # "auto" | "bf16" | "off"; auto = bf16 on CUDA only (measured)
    threads: int | None = None        # torch intra-op threads (None: leave torch's default)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.schedule_steps < 1:
            raise ValueError("steps and schedule_steps must be at least 1")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError("epochs must be at least 1 or None")
        if not 0.0 <= self.warmup_frac < 1.0:
            raise ValueError("warmup_frac must be in [0, 1)")
        if self.window_len < 2 or self.windows_per_batch < 1:
            raise ValueError("window_len must be >= 2 and windows_per_batch >= 1")
        if self.train_queries is not None and self.train_queries < 1:
            raise ValueError("train_queries must be positive or None")
        if self.rollout_horizon < 0:
            raise ValueError("rollout_horizon must be >= 0")
        if self.amp not in ("auto", "bf16", "off"):
            raise ValueError(f"amp must be 'auto', 'bf16' or 'off', got {self.amp!r}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ValueError("time_budget_s must be positive")
        if not 0.0 <= self.ema_start <= self.ema_end <= 1.0:
            raise ValueError("need 0 <= ema_start <= ema_end <= 1")
        if self.stay_weight < 0:
            raise ValueError("stay_weight must be >= 0")
        if self.patience < 0 or self.plateau_rel < 0:
            raise ValueError("patience and plateau_rel must be non-negative")

    @staticmethod
    def preset(name: str) -> TrainConfig:
        """The preset's training settings (shared.presets.TRAIN, where their reasons are)."""
        if name not in TRAIN_PRESETS:
            raise ValueError(f"unknown training preset {name!r}; choose 'cpu' or 'paper'")
        return TrainConfig(**TRAIN_PRESETS[name])

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
