"""World-model quality benchmark on the simulated PTZ world.

    python bench/worldmodel.py --out bench/results/worldmodel.json [--panorama IMAGE] [--seed N]

Trains the `cpu` preset on one simulated random sweep (10 rounds x 21 frames: a random absolute
pose, then 20 random moves from the 21 actions) and evaluates on a second sweep with other poses
and later times (held out): one-step and rollout latent error against the "nothing moves" copy
baseline, a ridge pose probe (collapse guard), and the Spearman correlation of each surprise head
with the actual error. Writes and prints JSON.

Probe protocol: the encoder trains only on the 10 x 21 sweep; the ridge probe is then fitted on
`--probe-fit` random views of the same site (uniform pan and tilt, log-uniform zoom, other seed and
time) and scored on `--probe-test` disjoint random views (another seed, later time). `--all-surprise`
also trains the disagreement and grad_norm heads (same predictor, about twice the cost per step).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.output import machine, write_result
from services.worldmodel.config import TrainConfig
from services.worldmodel.data import FrameDataset
from services.worldmodel.evaluate import evaluate
from services.worldmodel.trainer import fit
from shared.models import SurpriseConfig, WorldModelConfig, build_world_model
from shared.pose import N_ACTIONS, ActionScale, PoseRanges, apply_action, random_pose

# Moves twice the original's degrees: its short moves (0.2 deg) are below one pixel of a 64 px
# wide view, so they would teach nothing; jumps become 20 deg of pan.
BENCH_SCALE = ActionScale(pan_tilt_deg=4.0, zoom_log_step=2.0)
# A camera watching a site rather than the sky: with the full tilt range (up to 90) and zoom up to
# 20x, most random views are featureless sky in which the pose is not observable at all.
BENCH_RANGES = PoseRanges(tilt_min=-20.0, tilt_max=30.0, zoom_min=1.0, zoom_max=8.0)


def simulate_sweep(world, rounds: int, moves: int, seed: int, size: int, t0: float = 0.0,
                   ranges: PoseRanges | None = None,
                   scale: ActionScale = BENCH_SCALE) -> FrameDataset:
    """A random sweep rendered by `world` (anything with render(pose, t, width, height))."""
    rng = random.Random(seed)
    ranges = ranges or BENCH_RANGES
    frames, poses, ids = [], [], []
    for r in range(rounds):
        pose = ranges.apply(random_pose(rng, ranges))
        t = t0 + 300.0 * r
        for k in range(moves + 1):
            if k:
                pose = apply_action(pose, rng.randrange(N_ACTIONS), ranges, scale)
                t += 2.0  # a move and a settled snapshot take about two seconds
            frames.append(world.render(pose, t, size, size))
            poses.append(pose.as_tuple())
            ids.append(r)
    return FrameDataset(np.stack(frames), np.array(poses), np.array(ids), ranges)


def random_views(world, n: int, seed: int, size: int, t0: float,
                 ranges: PoseRanges | None = None) -> FrameDataset:
    """n independent random views (each its own round), for the pose probe."""
    rng = random.Random(seed)
    ranges = ranges or BENCH_RANGES
    poses = [ranges.apply(random_pose(rng, ranges)) for _ in range(n)]
    frames = [world.render(p, t0 + 7.0 * i, size, size) for i, p in enumerate(poses)]
    return FrameDataset(np.stack(frames), np.array([p.as_tuple() for p in poses]),
                        np.arange(n), ranges)


def make_world(seed: int, panorama: str | None):
    from services.camera.sim.world import SimWorld, SimWorldConfig
    return SimWorld(SimWorldConfig(seed=seed, panorama_path=panorama))


def bench_configs(budget_s: float, all_surprise: bool = False,
                  hfov_deg: float = 60.0) -> tuple[WorldModelConfig, TrainConfig]:
    """The cpu presets, with the warp geometry of the simulated camera and the bench's ranges."""
    wm = WorldModelConfig.preset("cpu")
    r = BENCH_RANGES
    wm = wm.replace(predictor=dataclasses.replace(
        wm.predictor, warp_hfov_deg=hfov_deg, warp_tilt_span_deg=r.tilt_max - r.tilt_min,
        warp_zoom_span=r.zoom_max / r.zoom_min))
    if all_surprise:
        wm = wm.replace(surprise=SurpriseConfig(targets=("pred_error", "disagreement", "grad_norm"),
                                                primary="pred_error", hidden=wm.surprise.hidden,
                                                ensemble_size=4))
    return wm, TrainConfig.preset("cpu").replace(time_budget_s=budget_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--panorama", default=None, help="equirectangular image (2:1) to use")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--moves", type=int, default=20)
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="training time budget (the whole bench must stay under 10 min)")
    parser.add_argument("--epochs", type=int, default=80,
                        help="epochs bound (the schedule is sized to the time budget when that binds first)")
    parser.add_argument("--probe-fit", type=int, default=400, help="random views the probe fits on")
    parser.add_argument("--probe-test", type=int, default=400, help="random views it is scored on")
    parser.add_argument("--all-surprise", action="store_true",
                        help="also train the disagreement and grad_norm surprise heads")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    start = time.monotonic()
    world = make_world(args.seed, args.panorama)
    wm_cfg, tr_cfg = bench_configs(args.budget_s, args.all_surprise,
                                   world.config.base_hfov_deg)
    if args.epochs:
        tr_cfg = tr_cfg.replace(epochs=args.epochs)
    size = wm_cfg.encoder.img_size
    train = simulate_sweep(world, args.rounds, args.moves, seed=1000 + args.seed, size=size)
    held = simulate_sweep(world, args.rounds, args.moves, seed=2000 + args.seed, size=size,
                          t0=10_000.0)
    probe_fit = random_views(world, args.probe_fit, seed=3000 + args.seed, size=size, t0=20_000.0)
    probe_test = random_views(world, args.probe_test, seed=4000 + args.seed, size=size,
                              t0=30_000.0)
    model = build_world_model(wm_cfg)
    load_start = os.getloadavg()[0]

    def progress(ev: dict) -> None:
        if ev["kind"] == "epoch" and (ev["epoch"] % 5 == 0 or ev["epoch"] == 1):
            print(f"epoch {ev['epoch']:3d} loss {ev['loss']:.4f} {ev['elapsed_s']:.0f}s",
                  file=sys.stderr, flush=True)

    result = fit(model, train, tr_cfg, progress=progress)
    metrics = evaluate(model, train, held, probe_train=probe_fit, probe_test=probe_test)
    out = {**{k: metrics[k] for k in ("one_step_ratio", "rollout_ratio", "probe_r2",
                                      "surprise_spearman")},
           "details": {k: v for k, v in metrics.items() if k not in
                       ("one_step_ratio", "rollout_ratio", "probe_r2", "surprise_spearman")},
           "probe_protocol": (f"ridge (lambda by 5-fold CV) from pooled target-encoder states "
                              f"(token mean and std + 2x2 regional means) to (sin pan, cos pan, tilt, "
                              f"log zoom); fitted on {args.probe_fit} random views of the site "
                              f"(seed {3000 + args.seed}), scored on {args.probe_test} disjoint "
                              f"random views (seed {4000 + args.seed}, later time); the encoder "
                              f"trained only on the {args.rounds} x {args.moves + 1} sweep"),
           "training": {"stop_reason": result.stop_reason, "epochs": result.epochs,
                        "steps": result.steps, "seconds": round(result.seconds, 1),
                        "transitions_per_s": round(result.transitions_per_s, 1),
                        "epoch_losses": [round(x, 5) for x in result.epoch_losses]},
           "config": {"world_model": wm_cfg.to_dict(), "train": tr_cfg.to_dict(),
                      "action_scale": vars(BENCH_SCALE) if hasattr(BENCH_SCALE, "__dict__")
                      else str(BENCH_SCALE), "ranges": dataclasses.asdict(BENCH_RANGES),
                      "rounds": args.rounds, "moves": args.moves,
                      "seed": args.seed, "panorama": args.panorama},
           "machine": machine(load_start),
           "wall_s": round(time.monotonic() - start, 1)}
    write_result(args.out, out)


if __name__ == "__main__":
    main()
