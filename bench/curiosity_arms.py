"""The arms of the curiosity bench: each is one site's lifelong loop on the simulated camera, fed
by one policy, run through the system's own phase code.

An arm holds a world model with its resumable training state (optimiser moments and the lifelong
schedule continue across cycles, as the training phase resumes a slot), the frames its camera
recorded, and its model as it was before the last training (the "previous version" that the
learning-progress reward compares against). Every cycle an agent arm dreams from its frames with
the dreamer's own compute (services.dreamer.phase.dream_batch: measured error map, progress map,
rollouts), trains a fresh agent on the dreams with its reward (services.agent.dqn, as the agent
phase does), and drives the camera through the episode runner the sweep and navigation use
(bench.curiosity_drive over shared.episodes); the random arm drives the same runner with the
random policy. All arms start every cycle from the same poses at the same simulated time and make
the same camera steps; every arm's world model then trains the same number of optimiser steps on
the newest rounds of its own frames (services.worldmodel.trainer.fit, as the training phase).
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from bench.curiosity_drive import Episodes, agent_policy, drive, random_policy
from services.agent.config import AgentConfig
from services.agent.dqn import make_agent, replay_from_dreams, train
from services.dreamer.phase import dream_batch
from services.worldmodel.checkpoint import resumable_bytes, state_from_bytes
from services.worldmodel.config import TrainConfig
from services.worldmodel.data import FrameDataset
from services.worldmodel.trainer import fit
from services.worldmodel.training import TrainState
from shared.dreams import Dreams, ObservationSpec
from shared.models.world_model import WorldModel
from shared.move_times import move_times_from_steps
from shared.pose import ActionScale, Pose, PoseRanges

RANDOM = "random"


def variant_reward(variant: str, default_gamma: float,
                   default_weight: float = 1.0) -> tuple[str, float, float]:
    """REWARD[:VIEW_WEIGHT][@GAMMA] -> (reward, gamma, view_weight): "measured_balanced:2@0.9"
    -> ("measured_balanced", 0.9, 2.0); "progress" -> ("progress", default_gamma,
    default_weight). Raises ValueError on a number that does not parse."""
    head, _, gamma = variant.partition("@")
    reward, _, weight = head.partition(":")
    return (reward, float(gamma) if gamma else default_gamma,
            float(weight) if weight else default_weight)


@dataclass
class Budget:
    """What every arm gets per cycle, in steps (never seconds)."""

    wm_steps: int
    schedule_steps: int  # the lifelong schedule's length, over all cycles
    max_rounds: int      # the newest rounds each training sees (the phase's worldmodel.max_rounds)
    dreams: int
    dream_length: int
    dream_batch: int
    error_map_transitions: int
    agent_updates: int
    gamma: float
    view_weight: float
    epsilon: float

    def train_config(self, seed: int) -> TrainConfig:
        """The `cpu` preset's training with this budget, on the bench's torch threads (the
        preset takes every core, which oversubscribes a machine running seeds side by side)."""
        return TrainConfig.preset("cpu").replace(steps=self.wm_steps, epochs=None,
                                                 schedule_steps=self.schedule_steps, seed=seed,
                                                 threads=torch.get_num_threads())


@dataclass
class Arm:
    name: str  # RANDOM or a reward variant (REWARD[:VIEW_WEIGHT][@GAMMA])
    state: TrainState
    old: WorldModel  # the model before its last training
    data: list[FrameDataset] = field(default_factory=list)
    steps: list = field(default_factory=list)  # per round, (action, capture time): move times
    episodes: list[Episodes] = field(default_factory=list)  # what its camera did, per cycle
    log: list[dict] = field(default_factory=list)

    @property
    def model(self) -> WorldModel:
        return self.state.model

    def recent(self, max_rounds: int) -> FrameDataset:
        """Its newest `max_rounds` rounds, as the training phase loads them."""
        return newest_rounds(self.data, max_rounds)


def newest_rounds(data: list[FrameDataset], max_rounds: int) -> FrameDataset:
    """The newest `max_rounds` rounds of `data` (oldest first), as one data set."""
    frames = np.concatenate([d.frames for d in data])
    poses = np.concatenate([d.poses for d in data])
    rounds = np.concatenate([d.round_ids for d in data])
    times = np.concatenate([d.times for d in data])
    keep = np.isin(rounds, list(dict.fromkeys(rounds.tolist()))[-max_rounds:])
    return FrameDataset(frames[keep], poses[keep], rounds[keep], times[keep], data[0].ranges)


def train_arm(arm: Arm, budget: Budget, seed: int) -> dict:
    """`budget.wm_steps` optimiser steps on the arm's newest rounds, continuing its schedule; the
    model before them becomes `arm.old`."""
    arm.old = copy.deepcopy(arm.model).eval()
    res = fit(arm.model, arm.recent(budget.max_rounds), budget.train_config(seed), state=arm.state)
    arm.state = res.state
    return {"steps": res.steps, "lifetime_steps": res.lifetime_steps, "stop_reason": res.stop_reason,
            "seconds": round(res.seconds, 1),
            "final_loss": round(res.final_loss, 5) if res.final_loss is not None else None}


def split_arms(names: list[str], first: TrainState, init: WorldModel, cfg: TrainConfig,
               data: FrameDataset, steps: list) -> list[Arm]:
    """Every arm starts from the same first world model, each with its own copy of the training
    state, through the resumable checkpoint file the training phase writes."""
    blob = resumable_bytes(first, cfg)
    return [Arm(name, state_from_bytes(blob, cfg), copy.deepcopy(init), [data], list(steps))
            for name in names]


def dreams_of(arm: Arm, budget: Budget, ranges: PoseRanges, scale: ActionScale,
              spec: ObservationSpec, seed: int) -> tuple[Dreams, dict]:
    """The arm's dreams from all its frames, by the dreamer's own compute."""
    frames = arm.recent(budget.max_rounds)
    t0 = time.monotonic()
    dreams, info = dream_batch(arm.model, arm.old, frames, ranges, scale=scale, spec=spec,
                               n_dreams=budget.dreams, length=budget.dream_length, seed=seed,
                               batch=budget.dream_batch,
                               error_map_transitions=budget.error_map_transitions,
                               move_times=move_times_from_steps(arm.steps))
    return dreams, {**info, "dream_job_s": round(time.monotonic() - t0, 1)}


def train_agent(arm: Arm, dreams: Dreams, budget: Budget, seed: int):
    """A fresh agent trained on the dreams with the arm's reward; (its Q-network, info)."""
    reward, gamma, weight = variant_reward(arm.name, budget.gamma, budget.view_weight)
    cfg = AgentConfig.preset("cpu").replace(reward=reward, gamma=gamma, view_weight=weight,
                                            seed=seed, updates=budget.agent_updates,
                                            time_budget_s=None)
    state = make_agent(cfg, dreams.obs_dim)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small MLP: one thread is fastest (measured)
    try:
        res = train(state, replay_from_dreams(dreams, cfg))
    finally:
        torch.set_num_threads(threads)
    return state.policy, {"updates": res.updates, "seconds": round(res.seconds, 1),
                          "loss_last": round(float(np.mean(res.losses[-50:])), 4)}


def run_arm_cycle(arm: Arm, cycle: int, *, world, t: float, starts: list[Pose], moves: int,
                  size: int, ranges: PoseRanges, scale: ActionScale, spec: ObservationSpec,
                  budget: Budget, seed: int, holds: bool) -> Episodes:
    """One cycle's camera work of an arm (dreams and agent first for an agent arm); its frames
    are added to the arm's data."""
    info: dict = {"cycle": cycle}
    common = {"round_offset": cycle * 1000, "holds": holds}
    if arm.name == RANDOM:
        policy = random_policy(random.Random(seed * 7 + cycle))
    else:
        dreams, info["dreams"] = dreams_of(arm, budget, ranges, scale, spec, seed * 100 + cycle)
        q_net, info["agent"] = train_agent(arm, dreams, budget, seed)
        policy = agent_policy(arm.model, q_net, spec, ranges, budget.epsilon,
                              np.random.default_rng(seed * 1000 + cycle))
    ep = drive(world, t, starts, moves, policy, size, scale, **common)
    arm.data.append(ep.dataset(ranges))
    arm.steps.extend(ep.steps())
    arm.episodes.append(ep)
    arm.log.append(info)
    return ep
