"""Curiosity benchmark: does the dream-trained agent look where the world model is weak?

    python bench/curiosity.py --out bench/results/curiosity.json [--panorama IMAGE] [--seeds 3]

In the simulated world (SimWorld + SimCamera directly, no services; `cpu` presets; camera ranges
pan 0..360 wrapping, tilt -30..30, zoom 1..10, the project's sim default; 4 deg per action unit
for every policy, `--pan-tilt-deg`), per seed:

- cycle 1: a random sweep (rounds of a random absolute pose, then random moves from the 21
  actions), world-model (WM) training (services.worldmodel.trainer.fit, time-bounded);
- cycles 2..K, two arms from that same WM:
  * agent arm: dream from the arm's frames (services.dreamer.rollout, with the measured error
    map of services.dreamer.error_map fitted on them), train a fresh agent per
    reward variant (services.agent), then the primary agent drives a sim camera for the cycle's
    navigation rounds; its frames are added and the arm's WM trains on.
  * random arm: a random policy (same round start poses, same clock) drives the camera; its frames
    feed the random arm's WM, with the same budget.
  In every agent cycle the agent(s), the random policy and a sweep policy (fresh random absolute
  poses per round, random moves) are measured on the SAME world model (the agent arm's):
  * surprise-seeking (`seeking_ratio`): the WM's TRUE error at the views each policy visits,
    agent / random: its prediction of each visited view from the frame before it and the move
    (against the target encoder of the frame actually observed; mean smooth-L1 per transition,
    the WM's own loss). `seeking_ratio_view` is a stricter reading: the WM's
    true error for *holding still* at each visited view (its prediction from the encoded frame
    against the same view rendered one no-op move later), which does not depend on the move
    that led there, so jumping anywhere (a jump's error is mostly new content coming into view)
    does not score;
  * dynamic dwell: fraction of steps whose view is mostly dynamic
    (world.dynamic_zone_fraction(pose) > 0.5), agent / random.
- reward variants (`--rewards`, each REWARD[:VIEW_WEIGHT][@GAMMA]; default the agent's default
  reward, then `measured_view`): the first drives the agent arm's camera and feeds its WM, the
  others are trained on the same dreams and measured on the same WM;
- hold frames (`--holds`, default, as the system's `hold_frames`): every policy grabs each view a
  second time one no-op move later, so the error map's atlas is fitted on holds; all policies
  make the same camera steps, and only their own moves are measured;
- learning gain: after K cycles, each arm's WM one-step error on a fixed held-out set of random
  transitions (other poses, later times), relative to its own copy baseline; agent arm / random arm.
  Also per region: `learning_gain_dynamic` over the held-out transitions that end on a
  mostly dynamic view, `learning_gain_static` over those that end on a static one (< 10% dynamic).
- diagnostic: is the WM's *predicted* surprise high on dynamic views (Spearman with the dynamic
  fraction, mean on dynamic vs static views) and does it rank the true error (Spearman)?

Writes and prints JSON: seeking_ratio, dwell_ratio, learning_gain (means over seeds), per_seed,
diagnostics, config, wall time.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.curiosity_drive import Episodes, agent_policy, drive, random_policy
from bench.curiosity_measures import (
    diagnostics,
    held_out_error,
    merge,
    region_gain,
    stay_pairs,
    summarise,
    transition_stats,
    view_check,
    vs_random,
)
from bench.output import machine, write_result
from services.agent.config import AgentConfig
from services.agent.dqn import AgentState, make_agent, replay_from_dreams, train
from services.camera.sim.world import SimWorld, SimWorldConfig
from services.dreamer.error_map import ErrorMap, error_map_from_frames
from services.dreamer.rollout import dream_from_frames, encode_frames
from services.worldmodel.config import TrainConfig
from services.worldmodel.data import FrameDataset
from services.worldmodel.trainer import fit
from shared.dreams import REWARDS, Dreams, ObservationSpec
from shared.models import build_world_model
from shared.models.world_model import WorldModel
from shared.move_times import move_times_from_steps
from shared.pose import ActionScale, Pose, PoseRanges, random_pose

SIM_RANGES = PoseRanges(pan_min=0.0, pan_max=360.0, tilt_min=-30.0, tilt_max=30.0, zoom_min=1.0,
                        zoom_max=10.0, pan_wraps=True)
FRAME_SIZE = 64  # the `cpu` world-model preset's input
CYCLE_S = 2000.0  # simulated seconds from one cycle's camera clock to the next's
RATIOS = ("seeking_ratio", "seeking_ratio_view", "dwell_ratio")
ARMS = ("agent", "random")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def train_wm(model, data: FrameDataset, steps: int, seed: int) -> dict:
    """`steps` optimiser steps (the whole schedule within them, as each call starts a new run;
    the preset's wall-clock cap stays as the safety limit and is reported if it fires)."""
    cfg = TrainConfig.preset("cpu").replace(steps=steps, schedule_steps=steps, epochs=None,
                                            seed=seed)
    res = fit(model, data, cfg)
    return {"steps": res.steps, "seconds": round(res.seconds, 1), "stop_reason": res.stop_reason,
            "last_loss": round(res.final_loss, 5) if res.final_loss is not None else None}


def concat_datasets(parts: list[FrameDataset]) -> FrameDataset:
    return FrameDataset(np.concatenate([p.frames for p in parts]),
                        np.concatenate([p.poses for p in parts]),
                        np.concatenate([p.round_ids for p in parts]),
                        np.concatenate([p.times for p in parts]), parts[0].ranges)


def variant_reward(variant: str, default_gamma: float,
                   default_weight: float = 1.0) -> tuple[str, float, float]:
    """REWARD[:VIEW_WEIGHT][@GAMMA] -> (reward, gamma, view_weight): "measured_balanced:2@0.9"
    -> ("measured_balanced", 0.9, 2.0); "measured" -> ("measured", default_gamma, default_weight).
    Raises ValueError on a number that does not parse."""
    head, _, gamma = variant.partition("@")
    reward, _, weight = head.partition(":")
    return (reward, float(gamma) if gamma else default_gamma,
            float(weight) if weight else default_weight)


@dataclasses.dataclass
class SeedRun:
    """What the cycles of one seed share: the world, the random streams, the two arms."""

    seed: int
    args: argparse.Namespace
    scale: ActionScale
    spec: ObservationSpec
    world: SimWorld
    rng: random.Random  # start poses of the sweep and of every cycle's rounds
    held: FrameDataset  # held-out random transitions, later than anything trained on
    held_first: dict  # the cycle-1 WM's error on them
    checks: dict  # random views grabbed twice, to check view surprise against true error
    wm: dict[str, WorldModel]  # per arm
    data: dict[str, list[FrameDataset]]  # per arm, the frames its WM trains on
    wm_log: list[dict]
    t: float  # simulated start time of the next cycle's cameras
    t_start: float
    # per arm, the (action, capture time) rounds of its frames: how long each action takes
    steps: dict[str, list] = dataclasses.field(default_factory=dict)

    @property
    def measured(self) -> list[str]:
        """The reward variants trained and measured every cycle (the first drives the camera)."""
        return self.args.rewards + (["oracle"] if self.args.oracle else [])

    def starts(self, n: int) -> list[Pose]:
        return [self.world.ranges.apply(random_pose(self.rng, SIM_RANGES)) for _ in range(n)]


def start_seed(seed: int, args, scale: ActionScale, spec: ObservationSpec) -> SeedRun:
    """Cycle 1: the held-out set, the random sweep, then the first world model (both arms')."""
    t_start = time.monotonic()
    torch.manual_seed(seed)
    world = SimWorld(SimWorldConfig(seed=seed, panorama_path=args.panorama, ranges=SIM_RANGES,
                                    cache_dir=args.cache_dir))
    rng = random.Random(1000 + seed)
    held_rng = random.Random(9000 + seed)
    held = drive(world, 50_000.0, [world.ranges.apply(random_pose(held_rng, SIM_RANGES))
                                   for _ in range(args.held_rounds)], args.held_moves,
                 random_policy(held_rng), FRAME_SIZE, scale).dataset(SIM_RANGES)
    sweep_starts = [world.ranges.apply(random_pose(rng, SIM_RANGES))
                    for _ in range(args.sweep_rounds)]
    sweep = drive(world, 0.0, sweep_starts, args.moves, random_policy(rng, args.sweep_hold),
                  FRAME_SIZE, scale, holds=args.holds)
    data0 = sweep.dataset(SIM_RANGES)
    wm0 = build_world_model("cpu")
    log(f"[seed {seed}] cycle 1: sweep of {len(data0)} frames, training the WM")
    wm_log = [{"cycle": 1, **train_wm(wm0, data0, args.wm_first_steps or args.wm_steps, seed)}]
    wm = {"agent": wm0, "random": copy.deepcopy(wm0)}
    held_first = held_out_error(wm0, held)
    checks = stay_pairs(world, random.Random(7000 + seed), args.view_checks, 60_000.0, FRAME_SIZE)
    return SeedRun(seed, args, scale, spec, world, rng, held, held_first, checks, wm,
                   {"agent": [data0], "random": [data0]}, wm_log, CYCLE_S, t_start,
                   {"agent": sweep.steps(), "random": sweep.steps()})


def cycle_dreams(run: SeedRun, cycle: int) -> tuple[ErrorMap, Dreams, dict]:
    """The agent arm's error map and dreams from all its frames, with their timings."""
    model, args = run.wm["agent"], run.args
    frames = concat_datasets(run.data["agent"])
    t0 = time.monotonic()
    states = encode_frames(model, frames.frames)
    emap = error_map_from_frames(model, states, frames.poses, frames.round_ids, SIM_RANGES,
                                 run.scale, times=frames.times)
    map_s = time.monotonic() - t0
    dreams = dream_from_frames(model, frames.frames, frames.poses, SIM_RANGES,
                               n_dreams=args.dreams, length=args.dream_length,
                               seed=run.seed * 100 + cycle, batch=args.dream_batch,
                               scale=run.scale, spec=run.spec, states=states, error_map=emap,
                               move_times=move_times_from_steps(run.steps["agent"]))
    dream_s = time.monotonic() - t0 - map_s
    return emap, dreams, {"dream_s": round(dream_s, 1), "error_map_s": round(map_s, 1)}


def oracle_dreams(world: SimWorld, dreams: Dreams) -> Dreams:
    """Diagnostic only: the reward a perfect surprise head would give in a world whose only
    unpredictable parts are its dynamic zones (the sim's ground truth at the dreamed pose). It
    never feeds a world model."""
    dz = [world.dynamic_zone_fraction(Pose(*p)) for p in
          dreams.poses[:, 1:].reshape(-1, 3).tolist()]
    return dataclasses.replace(dreams, surprise=torch.tensor(dz).reshape(
        dreams.surprise.shape).float())


def train_variant(run: SeedRun, variant: str, dreams: Dreams) -> tuple[AgentState, dict]:
    """A fresh agent trained on `dreams` with one reward variant; (its state, training info)."""
    args = run.args
    reward, gamma, weight = variant_reward(variant, args.gamma, args.view_weight)
    cfg = AgentConfig.preset("cpu").replace(reward="surprise" if reward == "oracle" else reward,
                                            gamma=gamma, view_weight=weight, seed=run.seed,
                                            updates=args.agent_updates, time_budget_s=None)
    state = make_agent(cfg, dreams.obs_dim)
    source = oracle_dreams(run.world, dreams) if reward == "oracle" else dreams
    mem = replay_from_dreams(source, cfg)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small MLP: one thread is fastest (measured)
    try:
        res = train(state, mem)
    finally:
        torch.set_num_threads(threads)
    return state, {"updates": res.updates, "seconds": round(res.seconds, 1),
                   "loss_first": round(float(np.mean(res.losses[:50])), 4),
                   "loss_last": round(float(np.mean(res.losses[-50:])), 4)}


def drive_policies(run: SeedRun, cycle: int, dreams: Dreams, emap: ErrorMap,
                   info: dict) -> dict[str, Episodes]:
    """Every policy's rounds of this cycle: one agent per reward variant (trained here, its
    training info added to `info`) and the random policy from the same start poses, the sweep
    policy from its own; all on one camera clock."""
    args, model = run.args, run.wm["agent"]
    common = {"round_offset": cycle * 1000, "holds": args.holds}
    starts, sweep_starts = run.starts(args.nav_rounds), run.starts(args.nav_rounds)
    info["view_check"] = view_check(model, run.checks, SIM_RANGES, emap)
    info["dream_surprise_mean"] = float(dreams.surprise.mean())
    eps = {}
    for v in run.measured:
        state, info[f"agent_{v}"] = train_variant(run, v, dreams)
        nrng = np.random.default_rng(run.seed * 1000 + cycle)
        eps[f"agent_{v}"] = drive(run.world, run.t, starts, args.moves,
                                  agent_policy(model, state.policy, run.spec, SIM_RANGES,
                                               args.epsilon, nrng), FRAME_SIZE, run.scale, **common)
    eps["random"] = drive(run.world, run.t, starts, args.moves,
                          random_policy(random.Random(run.seed * 7 + cycle)), FRAME_SIZE,
                          run.scale, **common)
    eps["sweep"] = drive(run.world, run.t, sweep_starts, args.moves,
                         random_policy(random.Random(run.seed * 11 + cycle)), FRAME_SIZE,
                         run.scale, **common)
    return eps


def log_cycle(run: SeedRun, cycle: int, info: dict, eps: dict[str, Episodes]) -> None:
    em, vc, head = info["error_map"], info["view_check"], f"[seed {run.seed}] cycle {cycle}:"
    log(f"{head} error map of {em['transitions']} transitions "
        f"(atlas from {em['atlas_source']}, {em['holds']} holds) "
        f"({em['observed_fraction']:.0%} of the sphere seen): vs true stay error "
        f"{vc['spearman_map_view_vs_true_stay_error']:.2f}, vs dynamic fraction "
        f"{vc['spearman_map_view_vs_dynamic_fraction']:.2f}")
    log(f"{head} the map's top decile of check views: dynamic fraction "
        f"{vc['map_top_decile_dynamic_fraction']:.2f} (all {vc['dynamic_fraction_mean']:.2f}), "
        f"true stay error {vc['map_top_decile_true_stay_error']:.4f} "
        f"(all {vc['true_stay_error_mean']:.4f})")
    log(f"{head} view surprise vs true stay error "
        f"{vc['spearman_view_surprise_vs_true_stay_error']:.2f}, vs dynamic fraction "
        f"{vc['spearman_view_surprise_vs_dynamic_fraction']:.2f}")
    log(f"{head} " + ", ".join(
        f"{k} view err {info[k]['true_view_error']:.4f} move err {info[k]['true_error']:.4f} "
        f"dwell {info[k]['dwell']:.2f} map {info[k]['map_view']:.4f}" for k in eps) +
        f" ({time.monotonic() - run.t_start:.0f}s)")


def run_cycle(run: SeedRun, cycle: int, per_policy: dict[str, list[dict]]) -> dict:
    """Cycle 2..K: dream, train the agents, drive every policy and measure it on the agent
    arm's WM (stats appended to `per_policy`), then each arm's WM learns from its own frames."""
    emap, dreams, timings = cycle_dreams(run, cycle)
    info: dict = {"cycle": cycle, **timings, "error_map": emap.summary()}
    eps = drive_policies(run, cycle, dreams, emap, info)
    run.t += CYCLE_S
    for name, ep in eps.items():
        st = transition_stats(run.wm["agent"], ep, run.world)
        st["map_view"] = emap.view(st["poses"])  # the measured map's rating of its views
        per_policy[name].append(st)
        info[name] = summarise(st)
    log_cycle(run, cycle, info, eps)
    fed = {"agent": eps[f"agent_{run.args.rewards[0]}"], "random": eps["random"]}
    for arm, ep in fed.items():
        run.data[arm].append(ep.dataset(SIM_RANGES))
        run.steps[arm].extend(ep.steps())
    for arm in ARMS:
        run.wm_log.append({"cycle": cycle, "arm": arm,
                           **train_wm(run.wm[arm], concat_datasets(run.data[arm]),
                                      run.args.wm_steps, run.seed + cycle)})
    return info


def seed_result(run: SeedRun, per_policy: dict[str, list[dict]], cycles: list[dict]) -> dict:
    """One seed's ratios, learning gains, per-policy summaries and diagnostics."""
    merged = {k: merge(v) for k, v in per_policy.items()}
    summary = {k: summarise(v) for k, v in merged.items()}
    held_dyn = np.array([run.world.dynamic_zone_fraction(Pose(*p)) for p in run.held.poses])
    final = {arm: held_out_error(run.wm[arm], run.held, held_dyn) for arm in ARMS}
    return {
        "seed": run.seed,
        **vs_random(summary, f"agent_{run.args.rewards[0]}"),
        "learning_gain": final["agent"]["ratio"] / final["random"]["ratio"],
        "learning_gain_raw": final["agent"]["error"] / final["random"]["error"],
        "learning_gain_dynamic": region_gain(final["agent"], final["random"], "dynamic"),
        "learning_gain_static": region_gain(final["agent"], final["random"], "static"),
        "variants": {v: vs_random(summary, f"agent_{v}") for v in run.measured},
        "sweep_vs_random": vs_random(summary, "sweep"),
        "policies": summary,
        "held_out": {"after_cycle_1": run.held_first, **final},
        # Over every measured transition (all policies, the agent arm's WMs).
        "diagnostics": diagnostics(merge(list(merged.values()))),
        "cycles": cycles,
        "world_model_training": run.wm_log,
        "wall_s": round(time.monotonic() - run.t_start, 1),
    }


def run_seed(seed: int, args, scale: ActionScale, spec: ObservationSpec) -> dict:
    run = start_seed(seed, args, scale, spec)
    per_policy: dict[str, list[dict]] = {k: [] for k in [f"agent_{v}" for v in run.measured] +
                                         ["random", "sweep"]}
    cycles = [run_cycle(run, cycle, per_policy) for cycle in range(2, args.cycles + 1)]
    out = seed_result(run, per_policy, cycles)
    log(f"[seed {seed}] seeking {out['seeking_ratio']:.2f} (holding still "
        f"{out['seeking_ratio_view']:.2f}) dwell {out['dwell_ratio']} "
        f"gain {out['learning_gain']:.3f} ({out['wall_s']:.0f}s)")
    return out


def mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--panorama", default=None, help="equirectangular image (2:1) to use")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--cycles", type=int, default=3, help="K: cycle 1 is the sweep")
    p.add_argument("--sweep-rounds", type=int, default=8)
    p.add_argument("--sweep-hold", type=float, default=0.0,
                   help="probability that a move of the cycle-1 sweep holds still (no-op)")
    p.add_argument("--nav-rounds", type=int, default=20,
                   help="navigation rounds per cycle and policy (twice the system's 10 x 20: at 10 "
                        "the ratios' noise floor is close to the targets, docs/agent.md)")
    p.add_argument("--moves", type=int, default=20)
    p.add_argument("--holds", action=argparse.BooleanOptionalAction, default=True,
                   help="grab every view a second time one no-op move later (the system's hold "
                        "frames; the error map's atlas is then fitted on holds alone)")
    p.add_argument("--held-rounds", type=int, default=40,
                   help="held-out random rounds (at 40 about 80 of their 400 transitions end on a "
                        "mostly dynamic view; 12 rounds hold only 3 - 27 of 120)")
    p.add_argument("--held-moves", type=int, default=10)
    p.add_argument("--wm-steps", type=int, default=60,
                   help="WM optimiser steps per cycle and arm (about 40 s on an idle 2-core machine)")
    p.add_argument("--wm-first-steps", type=int, default=None,
                   help="WM steps of cycle 1 (shared by both arms); default --wm-steps")
    p.add_argument("--view-checks", type=int, default=200,
                   help="random views grabbed twice (holding still) to check the WM's view "
                        "surprise against its true error, every cycle")
    p.add_argument("--dreams", type=int, default=4096, help="per cycle (the system's default)")
    p.add_argument("--dream-length", type=int, default=10)
    p.add_argument("--dream-batch", type=int, default=32)
    p.add_argument("--agent-updates", type=int, default=5000)
    p.add_argument("--gamma", type=float, default=AgentConfig().gamma,
                   help="the agents' discount, unless a variant says @GAMMA")
    p.add_argument("--view-weight", type=float, default=AgentConfig().view_weight,
                   help="measured_balanced's view weight, unless a variant says :WEIGHT")
    p.add_argument("--epsilon", type=float, default=0.05, help="run-time epsilon-greedy")
    p.add_argument("--rewards", default="measured_balanced,measured_view",
                   type=lambda s: [v.strip() for v in s.split(",") if v.strip()],
                   help="comma-separated reward variants (shared.dreams.REWARDS, or oracle) to "
                        "train and measure every cycle, each REWARD[:VIEW_WEIGHT][@GAMMA] (e.g. "
                        "measured_balanced:2@0.9; defaults --view-weight, --gamma); the first "
                        "drives the agent arm's camera and feeds its world model")
    p.add_argument("--pan-tilt-deg", type=float, default=4.0,
                   help="degrees per raw action unit (the original: 2, a jump = 10 deg pan); 4 by "
                        "default, as bench/worldmodel.py: at 2, 20 moves cannot cross the scene "
                        "(docs/agent.md)")
    p.add_argument("--pool-grid", type=int, default=ObservationSpec().pool_grid)
    p.add_argument("--oracle", action="store_true",
                   help="also train and measure a diagnostic agent whose dream reward is the "
                        "sim's ground-truth dynamic fraction (never feeds a WM)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache-dir", default=None)
    return p


def check_rewards(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit with a usage error unless every --rewards variant parses and the agent accepts it."""
    try:
        parsed = [variant_reward(v, args.gamma, args.view_weight) for v in args.rewards]
    except ValueError as exc:
        p.error(f"--rewards: a variant's :VIEW_WEIGHT or @GAMMA is not a number ({exc})")
    unknown = [v for v, (r, _, _) in zip(args.rewards, parsed, strict=True)
               if r not in (*REWARDS, "oracle")]
    if not args.rewards or unknown:
        p.error(f"--rewards: unknown {unknown} (choose from {', '.join(REWARDS)}, oracle)")
    for v, (_, gamma, weight) in zip(args.rewards, parsed, strict=True):
        try:  # the agent's own checks of gamma and the view weight
            AgentConfig(gamma=gamma, view_weight=weight)
        except ValueError as exc:
            p.error(f"--rewards: {v}: {exc}")
    if len(set(args.rewards)) != len(args.rewards):
        p.error("--rewards: a variant is named twice")
    if parsed[0][0] == "oracle":
        p.error("--rewards: the first variant feeds a world model; the oracle never does")


def summarise_seeds(per_seed: list[dict], args: argparse.Namespace, scale: ActionScale,
                    spec: ObservationSpec) -> dict:
    """Means over seeds of every ratio and diagnostic, with the per-seed results and config."""
    variants = per_seed[0]["variants"].keys()
    return {
        "seeking_ratio": mean(r["seeking_ratio"] for r in per_seed),
        "seeking_ratio_view": mean(r["seeking_ratio_view"] for r in per_seed),
        "dwell_ratio": mean(r["dwell_ratio"] for r in per_seed),
        "learning_gain": mean(r["learning_gain"] for r in per_seed),
        "learning_gain_raw": mean(r["learning_gain_raw"] for r in per_seed),
        "learning_gain_dynamic": mean(r["learning_gain_dynamic"] for r in per_seed),
        "learning_gain_static": mean(r["learning_gain_static"] for r in per_seed),
        "targets": {"seeking_ratio": ">= 1.5", "dwell_ratio": ">= 2", "learning_gain": "<= 0.9"},
        "variants": {v: {k: mean(r["variants"][v][k] for r in per_seed) for k in RATIOS}
                     for v in variants},
        "sweep_vs_random": {k: mean(r["sweep_vs_random"][k] for r in per_seed) for k in RATIOS},
        "diagnostics": {k: mean(r["diagnostics"][k] for r in per_seed)
                        for k in per_seed[0]["diagnostics"]},
        "per_seed": per_seed,
        "config": {k: v for k, v in vars(args).items() if k not in ("out", "cache_dir")} |
                  {"ranges": vars(SIM_RANGES) if hasattr(SIM_RANGES, "__dict__") else str(SIM_RANGES),
                   "action_scale": {"pan_tilt_deg": scale.pan_tilt_deg,
                                    "zoom_log_step": scale.zoom_log_step},
                   "world_model": "cpu", "agent": "cpu", "observation_spec": spec.to_dict(),
                   "primary_reward": args.rewards[0]},
    }


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    check_rewards(parser, args)
    torch.set_num_threads(args.threads)
    if args.cache_dir is None:
        args.cache_dir = str(Path(tempfile.gettempdir()) / "ptzjepa-panoramas")
    scale = ActionScale(pan_tilt_deg=args.pan_tilt_deg, zoom_log_step=ActionScale().zoom_log_step)
    spec = ObservationSpec(pool_grid=args.pool_grid)
    start, load_start = time.monotonic(), os.getloadavg()[0]
    per_seed = [run_seed(s, args, scale, spec) for s in range(args.first_seed,
                                                             args.first_seed + args.seeds)]
    out = summarise_seeds(per_seed, args, scale, spec)
    out["machine"] = machine(load_start)
    out["wall_s"] = round(time.monotonic() - start, 1)
    write_result(args.out, out, default=float)


if __name__ == "__main__":
    main()
