"""Which curiosity signal ignores the noisy TV? Error, learning progress and ensemble disagreement
per zone kind, on held-out transitions, as a random-fed world model learns.

    python bench/curiosity_signals.py --out FILE [--panorama IMAGE] [--seeds 3] [--cycles 5]

Per seed, on the simulated camera: the curiosity bench's stratified held-out set
(bench/curiosity_heldout.py), then `--cycles` cycles of a random camera (`--rounds` rounds of 20
moves with hold frames, as the bench's random arm) each followed by `--wm-steps` optimiser steps
of the `cpu` world model with a bootstrap ensemble of `--heads` heads (services.worldmodel.trainer
.fit, resuming one lifelong schedule; the heads never move the world model), on its newest 60
rounds. After each cycle, on every held-out transition (consecutive frames of a round):

- `error`: the model's measured error (services.dreamer.error_map.measure_transitions, what the
  `measured*` rewards pay);
- `progress`, `progress_global`, `progress_transition`: the previous cycle's model's error minus
  this one's on the same transitions (services.dreamer.progress.token_progress, what the
  progress map fits and the `progress*` rewards pay), raw, with the old error brought to the new
  model's scale by the two models' summed copy-baseline errors, or by each transition's;
- `disagreement`: the ensemble's variance across heads (WorldModel.ensemble_disagreement).

Each signal's mean per kind is fraction-weighted (a transition counts for every kind in its
target view, in proportion). A signal that ignores the noisy TV pays less on `noise` than on the
learnable kinds: `noise_over_learnable` is its noise mean / its learnable mean (below 1: the
noise screen draws less than the learnable zones; a negative progress ratio: the noise got worse).

Writes JSON: {"per_seed": [{"seed", "cycles": [{"cycle", signal: {kind: mean}}]}],
"noise_over_learnable": {signal: [per cycle, mean over seeds]}, "noise_over_learnable_per_seed",
"config", "machine", "wall_s"}.
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.curiosity import CYCLE_S, FRAME_SIZE, HELD_T0, SIM_RANGES
from bench.curiosity_arms import newest_rounds
from bench.curiosity_drive import drive, random_policy
from bench.curiosity_heldout import LEARNABLE, HeldOut, make_held_out
from bench.output import machine, write_result
from services.camera.sim.world import SimWorld, SimWorldConfig
from services.dreamer.error_map import measure_transitions
from services.dreamer.progress import token_progress
from services.dreamer.rollout import encode_frames
from services.worldmodel.config import TrainConfig
from services.worldmodel.trainer import fit
from shared.models import WorldModelConfig, build_world_model
from shared.models.config import EnsembleConfig
from shared.models.world_model import normalise_poses
from shared.pose import ActionScale, random_pose
from shared.scene import ZONE_KINDS

SIGNALS = ("error", "progress", "progress_global", "progress_transition", "disagreement")


def held_signals(new, old, held: HeldOut, scale: ActionScale) -> dict[str, np.ndarray]:
    """Per held-out transition, each signal (new: this cycle's model, old: the previous one's)."""
    d = held.data
    states = encode_frames(new, d.frames)
    m_new = measure_transitions(new, states, d.poses, d.round_ids, d.ranges, scale,
                                max_transitions=None, times=d.times)
    m_old = measure_transitions(old, encode_frames(old, d.frames), d.poses, d.round_ids,
                                d.ranges, scale, max_transitions=None, times=d.times)
    src = m_new["sources"]
    poses = np.asarray(d.poses, dtype=np.float64)
    with torch.no_grad():
        dis = torch.cat([new.ensemble_disagreement(
            states[s], normalise_poses(poses[s], d.ranges), normalise_poses(poses[s + 1], d.ranges),
            dt=m_new["dt"][i:i + len(s)]).mean(-1).cpu()
            for i, s in ((i, src[i:i + 64]) for i in range(0, len(src), 64))]).numpy()
    return {"error": m_new["errors"],
            **{name: token_progress(m_old, m_new, rescale).mean(1) for name, rescale in
               (("progress", "none"), ("progress_global", "global"),
                ("progress_transition", "transition"))},
            "disagreement": dis, "dst": src + 1}


def per_kind(values: np.ndarray, dst: np.ndarray, held: HeldOut) -> dict[str, float]:
    out = {}
    for k in ZONE_KINDS:
        w = held.kinds[k][dst]
        out[k] = float((w * values).sum() / w.sum()) if w.sum() > 0 else float("nan")
    w = sum(held.kinds[k][dst] for k in LEARNABLE)
    out["learnable"] = float((w * values).sum() / w.sum())
    out["overall"] = float(values.mean())
    return out


def run_seed(seed: int, args, scale: ActionScale) -> dict:
    torch.manual_seed(seed)
    world = SimWorld(SimWorldConfig(seed=seed, panorama_path=args.panorama, ranges=SIM_RANGES,
                                    cache_dir=args.cache_dir))
    held = make_held_out(world, SIM_RANGES, scale, seed=seed, rounds=args.held_rounds,
                         moves=args.held_moves, t0=HELD_T0, size=FRAME_SIZE)
    cfg_wm = WorldModelConfig.preset("cpu").replace(ensemble=EnsembleConfig(heads=args.heads))
    model = build_world_model(cfg_wm)
    cfg = TrainConfig.preset("cpu").replace(steps=args.wm_steps, epochs=None, seed=seed,
                                            schedule_steps=args.wm_steps * args.cycles,
                                            threads=torch.get_num_threads())
    data: list = []
    rng = random.Random(1000 + seed)
    state, cycles = None, []
    for cycle in range(1, args.cycles + 1):
        starts = [world.ranges.apply(random_pose(rng, SIM_RANGES)) for _ in range(args.rounds)]
        ep = drive(world, (cycle - 1) * CYCLE_S, starts, 20, random_policy(rng), FRAME_SIZE,
                   scale, round_offset=cycle * 1000, holds=True)
        data.append(ep.dataset(SIM_RANGES))
        old = copy.deepcopy(model).eval()
        res = fit(model, newest_rounds(data, 60), cfg, state=state)
        state = res.state
        model.eval()
        sig = held_signals(model, old, held, scale)
        row = {"cycle": cycle, "lifetime_steps": res.lifetime_steps}
        row.update({name: per_kind(sig[name], sig["dst"], held) for name in SIGNALS})
        cycles.append(row)
        print(f"[seed {seed}] cycle {cycle}: " + ", ".join(
            f"{n} noise/learnable {ratio(row[n]):.2f}" for n in SIGNALS), file=sys.stderr,
            flush=True)
    return {"seed": seed, "cycles": cycles}


def ratio(by_kind: dict[str, float]) -> float:
    return by_kind["noise"] / by_kind["learnable"] if by_kind["learnable"] else float("nan")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--panorama", default=None)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--cycles", type=int, default=5)
    p.add_argument("--rounds", type=int, default=20, help="random rounds per cycle")
    p.add_argument("--wm-steps", type=int, default=60)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--held-rounds", type=int, default=80)
    p.add_argument("--held-moves", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "ptzjepa-panoramas"))
    args = p.parse_args(argv)
    if min(args.seeds, args.cycles, args.rounds, args.wm_steps) < 1 or args.heads < 2:
        p.error("--seeds, --cycles, --rounds, --wm-steps must be positive and --heads >= 2")
    torch.set_num_threads(args.threads)
    start, load_start = time.monotonic(), os.getloadavg()[0]
    scale = ActionScale(pan_tilt_deg=4.0, zoom_log_step=ActionScale().zoom_log_step)
    per_seed = [run_seed(s, args, scale)
                for s in range(args.first_seed, args.first_seed + args.seeds)]
    per_seed_ratios = {n: [[ratio(c[n]) for c in r["cycles"]] for r in per_seed] for n in SIGNALS}
    out = {"per_seed": per_seed,
           "noise_over_learnable": {n: np.mean(v, axis=0).round(4).tolist()
                                    for n, v in per_seed_ratios.items()},
           "noise_over_learnable_per_seed": per_seed_ratios,
           "scene": Path(args.panorama).name if args.panorama else "default",
           "config": {k: v for k, v in vars(args).items() if k not in ("out", "cache_dir")},
           "machine": machine(load_start), "wall_s": round(time.monotonic() - start, 1)}
    write_result(args.out, out, default=float)
    return out


if __name__ == "__main__":
    main()
