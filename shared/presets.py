"""Every preset of ptzjepa, as plain data: what `cpu` and `paper` set, in one place.

A preset is chosen once (the `preset` setting) and fills four layers, each read by its own
constructor: the settings-level values (`SETTINGS`, merged under the config file by
`shared.config.load_settings`), the world model's sizes (`WORLD_MODEL`, read by
`WorldModelConfig.preset`), the world model's training (`TRAIN`, read by `TrainConfig.preset`) and
the agent (`AGENT`, read by `AgentConfig.preset`). The frozen-config entries list only the fields
that differ from the dataclass defaults. This module holds data only, so that `shared` stays free
of imports from `services`.
"""

from __future__ import annotations

import os
from typing import Any

PRESET_NAMES = ("cpu", "paper")

# Settings-level values: the knobs that the services read directly from the settings model.
SETTINGS: dict[str, dict[str, Any]] = {
    "cpu": {"collect": {"iterations": 10, "movements": 20}},
    "paper": {"collect": {"iterations": 20, "movements": 20}},
}

# `cpu`: small enough to train in minutes on 2 cores. `paper`: the original's sizes.
WORLD_MODEL: dict[str, dict[str, Any]] = {
    "cpu": {
        "encoder": {"img_size": 64, "patch_size": 8, "dim": 128, "depth": 4, "heads": 4},
        "predictor": {"dim": 128, "depth": 4, "heads": 4, "warp": True},
        "surprise": {"targets": ("pred_error",), "primary": "pred_error", "hidden": 128},
        "name": "cpu",
    },
    # ViT-tiny: 192-dim, 12 blocks, 3 heads, 224 px, patch 14 (256 tokens); predictor 12 x 384.
    # Coarse queries (one per 4 x 4 block of cells, 16 in all) over a 2 x 2-pooled memory
    # (64 tokens): a full dream step costs ~1/12 of one query per cell over all 256 tokens
    # (measured 119 vs 9.3 imagined steps/s on 2 cores); the warp base keeps every cell's
    # own token, the queries predict the change (docs/worldmodel.md).
    "paper": {
        "encoder": {"img_size": 224, "patch_size": 14, "dim": 192, "depth": 12, "heads": 3},
        "predictor": {"dim": 384, "depth": 12, "heads": 6, "query_self_attn": False, "warp": True,
                      "query_stride": 4, "memory_stride": 2},
        "surprise": {"targets": ("pred_error",), "primary": "pred_error", "hidden": 256},
        "name": "paper",
    },
}

# A world-model job runs a fixed number of optimiser steps (`steps`), so that what it learns does
# not depend on the machine's load; the presets' counts are about 240 s of training on an idle
# 2-core machine (docs/worldmodel.md). The wall-clock cap is a safety limit only, about 2.5x that:
# a job that hits it is reported (stop_reason "time_budget"). The lifelong schedules span ten
# jobs' steps (`schedule_steps`) and then hold their floors: lr / 10, EMA momentum 0.999.
WORLD_MODEL_JOB_CAP_S = 600.0

TRAIN: dict[str, dict[str, Any]] = {
    # Measured on the sim bench (docs/worldmodel.md): lr 2e-3 and 32 of 64 cells per one-step
    # transition trained faster per second than lr 1e-3 with all cells; rollouts on half the
    # windows keep the multi-step loss at a lower cost per step. Holding-still pairs on
    # (stay_weight 1): see TrainConfig.stay_weight.
    # 340 steps: 0.70 s per step idle (155 transitions/s at 108 per step).
    "cpu": {"lr": 2e-3, "final_lr": 2e-4, "train_queries": 32, "rollout_chains": 4,
            "stay_weight": 1.0, "threads": os.cpu_count(), "steps": 340, "schedule_steps": 3400,
            "time_budget_s": WORLD_MODEL_JOB_CAP_S},
    # The paper sizes on a small machine (docs/worldmodel.md): long windows (each encoded frame is
    # the source of 7 one-step pairs and the target of 7), 16 queries per transition (with the
    # paper predictor's 4 x 4 query blocks: all 16, i.e. every cell, for the cost that 16
    # single-cell queries had), one short rollout without backpropagation through the chain, and
    # torch on every core. No holding-still pairs: see TrainConfig.stay_weight.
    # 60 steps: 4.2 s per step idle (27 transitions/s at 114 per step).
    "paper": {"window_len": 8, "windows_per_batch": 2, "train_queries": 16, "rollout_horizon": 2,
              "rollout_chains": 1, "rollout_bptt": False, "lr": 5e-4, "final_lr": 5e-5,
              "threads": os.cpu_count(), "steps": 60, "schedule_steps": 600,
              "time_budget_s": WORLD_MODEL_JOB_CAP_S},
}

# An agent job runs `updates` DQN updates; `time_budget_s` is a safety cap only, about 2.5 - 3x
# the updates' time on an idle 2-core machine (a job that hits it is reported as "time_budget").
AGENT: dict[str, dict[str, Any]] = {
    # 2 x 256 MLP (~0.2M parameters at the cpu world model); 5,000 updates at 110 - 140 updates/s
    # idle: 35 - 45 s.
    "cpu": {"time_budget_s": 120.0},
    # 2 x 512 (~0.8M parameters, ~3 MB; the original's agent was a 257 MB transformer). 3,600
    # updates at 29 - 33 updates/s idle: about 120 s.
    "paper": {"hidden": (512, 512), "batch_size": 256, "replay_capacity": 100_000, "updates": 3600,
              "time_budget_s": 300.0},
}

