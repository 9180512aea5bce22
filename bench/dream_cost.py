"""What the learning-progress terms cost a dream job.

    python bench/dream_cost.py --out FILE [--preset cpu] [--repeats 3] [--rounds 30]

On the frames of a simulated sweep (`--rounds` rounds of a start view and 20 random moves, each
view held once as the system's hold frames; 30 rounds is a node half way to the training phase's
60-round window),
the dream job's own compute (services.dreamer.phase.dream_batch, with the dreamer's default
dreams, batch and error-map transitions) runs without an older model (error map and rollouts
only, as the job did before the progress terms) and with one (the progress map too), interleaved
`--repeats` times so that a drift of the machine's speed hits both alike. The two models have the
preset's architecture with different weights; the cost does not depend on what they learnt.

Writes JSON: {"seconds": {"without", "with"} (per run), "median_s": {...}, "slowdown" (median
with / median without), "parts": {...} (error map, progress map and rollout seconds of each
run), "target": "<= 1.25", "config", "machine"}.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.curiosity_drive import drive, random_policy
from bench.output import machine, write_result
from services.camera.sim.world import SimWorld, SimWorldConfig
from services.dreamer.phase import dream_batch
from shared.config import DreamerSettings
from shared.models import WorldModelConfig, build_world_model
from shared.move_times import move_times_from_steps
from shared.pose import ActionScale, random_pose

TARGET = 1.25  # issue 20: a dreamer job may get at most 25% slower


def sweep_frames(world: SimWorld, rounds: int, size: int, scale: ActionScale):
    rng = random.Random(0)
    starts = [world.ranges.apply(random_pose(rng, world.ranges)) for _ in range(rounds)]
    ep = drive(world, 0.0, starts, 20, random_policy(rng), size, scale, holds=True)
    return ep.dataset(world.ranges), move_times_from_steps(ep.steps())


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--preset", default="cpu", choices=["cpu", "paper"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--dreams", type=int, default=DreamerSettings().dreams)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.repeats < 1 or args.rounds < 1 or args.dreams < 1:
        p.error("--repeats, --rounds and --dreams must be positive")
    if args.threads:
        torch.set_num_threads(args.threads)
    job = DreamerSettings()
    scale = ActionScale()
    cfg = WorldModelConfig.preset(args.preset)
    world = SimWorld(SimWorldConfig(seed=0))
    frames, move_times = sweep_frames(world, args.rounds, cfg.encoder.img_size, scale)
    torch.manual_seed(0)
    model = build_world_model(cfg).eval()
    torch.manual_seed(1)
    old = build_world_model(cfg).eval()
    load_start = os.getloadavg()[0]
    seconds: dict[str, list[float]] = {"without": [], "with": []}
    parts: dict[str, list[dict]] = {"without": [], "with": []}
    for r in range(args.repeats):
        for name, previous in (("without", None), ("with", old)):
            t0 = time.perf_counter()
            _, info = dream_batch(model, previous, frames, world.ranges, n_dreams=args.dreams,
                                  length=job.length, seed=r, batch=job.batch,
                                  error_map_transitions=job.error_map_transitions,
                                  move_times=move_times, scale=scale)
            seconds[name].append(round(time.perf_counter() - t0, 2))
            parts[name].append({k: info[k] for k in ("error_map_s", "progress_s", "rollout_s")})
            print(f"run {r + 1} {name} the progress terms: {seconds[name][-1]} s", file=sys.stderr,
                  flush=True)
    median = {k: statistics.median(v) for k, v in seconds.items()}
    out = {"seconds": seconds, "median_s": median,
           "slowdown": round(median["with"] / median["without"], 3), "parts": parts,
           "target": f"<= {TARGET}",
           "config": {"preset": args.preset, "frames": len(frames.frames), "rounds": args.rounds,
                      "dreams": args.dreams, "length": job.length, "batch": job.batch,
                      "error_map_transitions": job.error_map_transitions},
           "machine": machine(load_start)}
    write_result(args.out, out)
    return out


if __name__ == "__main__":
    main()
