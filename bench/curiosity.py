"""Curiosity benchmark: does the agent make the world model learn faster than a random camera?

    python bench/curiosity.py --out FILE [--panorama IMAGE] [--seeds 3] [--cycles 5]
                              [--rewards progress,measured_balanced]

Per seed, in the simulated world (`cpu` presets; camera ranges pan 0..360 wrapping, tilt -30..30,
zoom 1..10; 4 deg per action unit, `--pan-tilt-deg`), through the system's own phase code
(bench/curiosity_arms.py says which):

- a fixed held-out set of random transitions over the whole scene, stratified by zone kind and
  later in simulated time than anything trained on (bench/curiosity_heldout.py);
- cycle 1: a random sweep and the first world-model training, shared by every arm;
- cycles 2..K: one arm per reward (`--rewards`, each REWARD[:VIEW_WEIGHT][@GAMMA]) and the random
  arm. An agent arm dreams from its own frames with its own world model, trains a fresh agent
  on the dreams with its reward and drives the camera; the random arm drives it with the random
  policy. Every arm starts from the same poses at the same simulated time, makes the same camera
  steps, and its world model then trains the same optimiser steps (`--wm-steps`) on its own
  newest rounds, continuing one lifelong schedule;
- after every cycle, each arm's held-out one-step ratio against its own copy baseline, overall,
  on the learnable kinds and per kind (the learning curves), and per state cell (each arm's
  cycle log's `ratio_cells`; `learning_gain_cells` after the last cycle); action recognition per
  stratum after cycle 1 and the last cycle;
- dwell: the share of each view that each kind covers, over the moves of each policy, against
  the random policy's.

Writes JSON: `learning_gain` {learnable, overall, static} (the first reward's arm / the random
arm, held-out ratios after the last cycle), `dwell_ratio` {kind..., learnable}, `rewards`
{reward: the same figures and action recognition}, `curves` {cycle, arms: {arm: {stratum:
[...]}}} (means over seeds), `per_seed` [...], `seeds_done`, `targets`, `config`, `machine`,
`wall_s`. The file is rewritten after every seed (the seeds done so far); the running seed's
figures after each of its cycles go to FILE's `.partial.json` sibling, removed once the seed is
done, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.curiosity_arms import RANDOM, Arm, Budget, run_arm_cycle, split_arms, train_arm, variant_reward
from bench.curiosity_drive import drive, random_policy
from bench.curiosity_heldout import STRATA, HeldOut, dwell_by_kind, dwell_ratios, make_held_out, score
from bench.output import machine, write_result
from services.agent.config import AgentConfig
from services.camera.sim.world import SimWorld, SimWorldConfig
from services.worldmodel.trainer import fit
from shared.dreams import REWARDS, ObservationSpec
from shared.models import build_world_model
from shared.pose import ActionScale, PoseRanges, random_pose

SIM_RANGES = PoseRanges(pan_min=0.0, pan_max=360.0, tilt_min=-30.0, tilt_max=30.0, zoom_min=1.0,
                        zoom_max=10.0, pan_wraps=True)
FRAME_SIZE = 64  # the `cpu` world-model preset's input
CYCLE_S = 2000.0  # simulated seconds from one cycle's camera clock to the next's
HELD_T0 = 50_000.0  # the held-out set's clock: later than every cycle's
TARGETS = {"dwell_noise": "<= 1.0", "dwell_learnable": ">= 2", "gain_learnable": "<= 0.8 (no seed "
           "above 0.9)", "gain_overall": "<= 0.95", "gain_static": "<= 1.05"}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def budget_of(args: argparse.Namespace) -> Budget:
    return Budget(wm_steps=args.wm_steps, schedule_steps=args.wm_steps * args.cycles,
                  max_rounds=args.max_rounds, dreams=args.dreams, dream_length=args.dream_length,
                  dream_batch=args.dream_batch, error_map_transitions=args.error_map_transitions,
                  agent_updates=args.agent_updates, gamma=args.gamma,
                  view_weight=args.view_weight, epsilon=args.epsilon)


def first_cycle(world: SimWorld, rng: random.Random, args, scale: ActionScale,
                budget: Budget, seed: int) -> tuple[list[Arm], dict]:
    """The sweep and the first training, shared by every arm; scores of the untrained and the
    first model."""
    init = build_world_model("cpu").eval()
    model = copy.deepcopy(init)
    starts = [world.ranges.apply(random_pose(rng, SIM_RANGES)) for _ in range(args.sweep_rounds)]
    sweep = drive(world, 0.0, starts, args.moves, random_policy(rng), FRAME_SIZE, scale,
                  holds=args.holds)
    data = sweep.dataset(SIM_RANGES)
    cfg = budget.train_config(seed)
    log(f"[seed {seed}] cycle 1: sweep of {len(data)} frames, training {budget.wm_steps} steps")
    res = fit(model, data, cfg)
    arms = split_arms([*args.rewards, RANDOM], res.state, init, cfg, data, sweep.steps())
    return arms, {"steps": res.steps, "seconds": round(res.seconds, 1)}


def run_seed(seed: int, args, scale: ActionScale, spec: ObservationSpec,
             on_cycle: Callable[[dict], None] | None = None) -> dict:
    """One seed's arms through every cycle; `on_cycle` gets the seed's result so far after each
    agent cycle (so that a run cut short still leaves its figures)."""
    t_start = time.monotonic()
    torch.manual_seed(seed)
    world = SimWorld(SimWorldConfig(seed=seed, panorama_path=args.panorama, ranges=SIM_RANGES,
                                    cache_dir=args.cache_dir))
    budget = budget_of(args)
    held = make_held_out(world, SIM_RANGES, scale, seed=seed, rounds=args.held_rounds,
                         moves=args.held_moves, t0=HELD_T0, size=FRAME_SIZE)
    rng = random.Random(1000 + seed)
    arms, first = first_cycle(world, rng, args, scale, budget, seed)
    at_init, after_first = score(arms[0].old, held), score(arms[0].model, held, scale=scale)
    curves = {a.name: [at_init["ratio"], after_first["ratio"]] for a in arms}
    for cycle in range(2, args.cycles + 1):
        starts = [world.ranges.apply(random_pose(rng, SIM_RANGES)) for _ in range(args.nav_rounds)]
        for arm in arms:
            run_arm_cycle(arm, cycle, world=world, t=(cycle - 1) * CYCLE_S, starts=starts,
                          moves=args.moves, size=FRAME_SIZE, ranges=SIM_RANGES, scale=scale,
                          spec=spec, budget=budget, seed=seed, holds=args.holds)
        for arm in arms:
            arm.log[-1]["train"] = train_arm(arm, budget, seed + cycle)
            scored = score(arm.model, held)
            curves[arm.name].append(scored["ratio"])
            arm.log[-1]["ratio_cells"] = scored.get("ratio_cells")
        log(f"[seed {seed}] cycle {cycle}: " + ", ".join(
            f"{a.name} {curves[a.name][-1]['overall']:.3f} (learnable "
            f"{curves[a.name][-1]['learnable']:.3f})" for a in arms) +
            f" ({time.monotonic() - t_start:.0f} s)")
        if on_cycle is not None and cycle < args.cycles:
            on_cycle(seed_result(seed, world, held, arms, curves, scale, first, after_first,
                                 t_start))
    return seed_result(seed, world, held, arms, curves, scale, first, after_first, t_start)


def seed_result(seed: int, world: SimWorld, held: HeldOut, arms: list[Arm], curves: dict,
                scale: ActionScale, first: dict, after_first: dict, t_start: float) -> dict:
    finals = {a.name: score(a.model, held, scale=scale) for a in arms}
    dwell = {a.name: dwell_by_kind(world, a.episodes) for a in arms}
    rand = finals[RANDOM]["ratio"]
    rewards = {}
    for a in arms:
        if a.name == RANDOM:
            continue
        mine = finals[a.name]["ratio"]
        mine_cells, rand_cells = finals[a.name].get("ratio_cells", {}), finals[RANDOM].get("ratio_cells", {})
        rewards[a.name] = {
            "learning_gain": {k: (mine[k] / rand[k] if mine[k] is not None and rand[k] else None)
                              for k in STRATA},
            "learning_gain_cells": {k: (v / rand_cells[k] if v is not None and rand_cells.get(k)
                                        else None) for k, v in mine_cells.items()},
            "dwell_ratio": dwell_ratios(dwell[a.name], dwell[RANDOM]),
            "action_top1": finals[a.name]["action_top1"],
            "cycles": a.log,
        }
    return {"seed": seed, "rewards": rewards, "dwell": dwell,
            "curves": {"cycle": list(range(len(curves[RANDOM]))), "arms": curves},
            "held_out": {"strata_transitions": held.strata_counts(),
                         "action_top1_random_arm": finals[RANDOM]["action_top1"],
                         "action_top1_after_cycle_1": after_first["action_top1"]},
            "first_cycle": first, "random_arm_cycles": arms[-1].log,
            "wall_s": round(time.monotonic() - t_start, 1)}


def mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def mean_curves(per_seed: list[dict]) -> dict:
    arms = per_seed[0]["curves"]["arms"]
    return {"cycle": per_seed[0]["curves"]["cycle"],
            "arms": {a: {s: [mean(r["curves"]["arms"][a][c][s] for r in per_seed)
                             for c in range(len(arms[a]))] for s in STRATA} for a in arms}}


def summarise_seeds(per_seed: list[dict], args: argparse.Namespace, scale: ActionScale) -> dict:
    rewards = {}
    for name in args.rewards:
        runs = [r["rewards"][name] for r in per_seed]
        rewards[name] = {
            "learning_gain": {k: mean(r["learning_gain"][k] for r in runs) for k in STRATA},
            "learning_gain_per_seed": {k: [r["learning_gain"][k] for r in runs] for k in STRATA},
            "learning_gain_cells_per_seed": {k: [r["learning_gain_cells"].get(k) for r in runs]
                                             for k in runs[0]["learning_gain_cells"]},
            "dwell_ratio": {k: mean(r["dwell_ratio"][k] for r in runs) for k in runs[0]["dwell_ratio"]},
            "dwell_ratio_per_seed": {k: [r["dwell_ratio"][k] for r in runs]
                                     for k in ("noise", "learnable", "static")},
            "action_top1": {k: mean(r["action_top1"][k] for r in runs) for k in STRATA},
        }
    primary = rewards[args.rewards[0]]
    return {
        "primary_reward": args.rewards[0],
        "learning_gain": {k: primary["learning_gain"][k] for k in ("learnable", "overall", "static")},
        "dwell_ratio": primary["dwell_ratio"],
        "rewards": rewards,
        "curves": mean_curves(per_seed),
        "scene": Path(args.panorama).name if args.panorama else "default",
        "targets": TARGETS,
        "per_seed": per_seed,
        "config": {k: v for k, v in vars(args).items() if k not in ("out", "cache_dir")} |
                  {"action_scale": {"pan_tilt_deg": scale.pan_tilt_deg,
                                    "zoom_log_step": scale.zoom_log_step},
                   "ranges": str(SIM_RANGES), "world_model": "cpu", "agent": "cpu"},
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--panorama", default=None, help="equirectangular image (2:1) to use")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--cycles", type=int, default=5, help="K, cycle 1 being the sweep (>= 2)")
    p.add_argument("--sweep-rounds", type=int, default=8)
    p.add_argument("--nav-rounds", type=int, default=20, help="rounds per cycle and arm")
    p.add_argument("--moves", type=int, default=20)
    p.add_argument("--holds", action=argparse.BooleanOptionalAction, default=True,
                   help="grab every view a second time one no-op move later (hold frames)")
    p.add_argument("--held-rounds", type=int, default=80)
    p.add_argument("--held-moves", type=int, default=5)
    p.add_argument("--wm-steps", type=int, default=60, help="WM optimiser steps per cycle and arm")
    p.add_argument("--max-rounds", type=int, default=60,
                   help="newest rounds each training sees (the system's worldmodel.max_rounds)")
    p.add_argument("--dreams", type=int, default=1024, help="per cycle and agent arm")
    p.add_argument("--dream-length", type=int, default=10)
    p.add_argument("--dream-batch", type=int, default=32)
    p.add_argument("--error-map-transitions", type=int, default=2000)
    p.add_argument("--agent-updates", type=int, default=3000)
    p.add_argument("--gamma", type=float, default=AgentConfig().gamma)
    p.add_argument("--view-weight", type=float, default=AgentConfig().view_weight)
    p.add_argument("--epsilon", type=float, default=0.05, help="run-time epsilon-greedy")
    p.add_argument("--rewards", default="progress,measured_balanced",
                   type=lambda s: [v.strip() for v in s.split(",") if v.strip()],
                   help="comma-separated reward variants, each REWARD[:VIEW_WEIGHT][@GAMMA]; one "
                        "arm each; the first is the candidate whose gains are reported on top")
    p.add_argument("--pan-tilt-deg", type=float, default=4.0)
    p.add_argument("--pool-grid", type=int, default=ObservationSpec().pool_grid)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache-dir", default=None)
    return p


def check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit with a usage error unless every --rewards variant parses and the agent accepts it."""
    if args.cycles < 2:
        p.error("--cycles must be at least 2 (cycle 1 is the sweep)")
    try:
        parsed = [variant_reward(v, args.gamma, args.view_weight) for v in args.rewards]
    except ValueError as exc:
        p.error(f"--rewards: a variant's :VIEW_WEIGHT or @GAMMA is not a number ({exc})")
    unknown = [v for v, (r, _, _) in zip(args.rewards, parsed, strict=True) if r not in REWARDS]
    if not args.rewards or unknown:
        p.error(f"--rewards: unknown {unknown} (choose from {', '.join(REWARDS)})")
    for v, (reward, gamma, weight) in zip(args.rewards, parsed, strict=True):
        try:  # the agent's own checks of the reward, gamma and the view weight
            AgentConfig(reward=reward, gamma=gamma, view_weight=weight)
        except ValueError as exc:
            p.error(f"--rewards: {v}: {exc}")
    if len(set(args.rewards)) != len(args.rewards) or RANDOM in args.rewards:
        p.error("--rewards: a variant is named twice")


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    torch.set_num_threads(args.threads)
    if args.cache_dir is None:
        args.cache_dir = str(Path(tempfile.gettempdir()) / "ptzjepa-panoramas")
    scale = ActionScale(pan_tilt_deg=args.pan_tilt_deg, zoom_log_step=ActionScale().zoom_log_step)
    spec = ObservationSpec(pool_grid=args.pool_grid)
    start, load_start = time.monotonic(), os.getloadavg()[0]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    per_seed: list[dict] = []
    for s in seeds:
        per_seed.append(run_seed(s, args, scale, spec,
                                 on_cycle=lambda r: write_partial(args.out, r)))
        out = summarise_seeds(per_seed, args, scale)
        out["seeds_done"] = [r["seed"] for r in per_seed]
        out["machine"] = machine(load_start)
        out["wall_s"] = round(time.monotonic() - start, 1)
        # rewritten after every seed, so that a run stopped early keeps the seeds it finished
        write_result(args.out, out, default=float, echo=s == seeds[-1])
        partial_path(args.out).unlink(missing_ok=True)  # that seed is in `out` now, whole
    return out


def partial_path(out: str) -> Path:
    return Path(out).with_suffix(".partial.json")


def write_partial(out: str, seed_so_far: dict) -> None:
    """The running seed's figures after its latest cycle, beside `out`."""
    write_result(partial_path(out), {"partial": True, **seed_so_far}, default=float, echo=False)


if __name__ == "__main__":
    main()
