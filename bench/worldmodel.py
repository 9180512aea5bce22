"""World-model quality benchmark on the simulated PTZ world.

    python bench/worldmodel.py --out FILE [--panorama IMAGE] [--seed N] [--cycles K] [--steps S]

Trains the `cpu` preset for K cycles (learnability): each cycle a new simulated random sweep
(10 rounds x 21 frames: a random absolute pose, then 20 random moves from the 21 actions, each frame
a snapshot of a simulated camera whose clock counts every move's settle time, so the frames carry
real dts), later in simulated time than the one before, and S optimiser steps on it, resuming the
same TrainState (optimiser, generator and lifelong schedule continue). Before the first cycle and
after each, it scores the one-step ratio per zone kind on one fixed kind set (a held-out sweep with
other poses and later times, plus rounds that start near each zone of the site). After the last
cycle: one-step and rollout latent error against the "nothing moves" copy baseline, action
recognition, the surprise heads' Spearman with the actual error (all on the held-out sweep), and
the probes fitted on one probe sweep of the same site and scored on another (collapse guard,
place recognition, inverse dynamics), for the model and for raw pixels
(services/worldmodel/probes.py, docs/worldmodel.md "Probes"). Writes and prints JSON.
`--all-surprise` also trains the grad_norm head and a 4-head bootstrap ensemble (same predictor,
about twice the cost per step; the ensemble never changes the world model's figures).
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
from bench.worldmodel_sim import (
    BENCH_RANGES,
    BENCH_SCALE,
    Sweep,
    bench_configs,
    cell_kinds,
    concat_sweeps,
    frame_kinds,
    make_world,
    override_config,
    recent_rounds,
    simulate_sweep,
    zone_starts,
)
from services.camera.sim.world import SimWorld
from services.worldmodel.config import TrainConfig
from services.worldmodel.evaluate import (
    encode_dataset,
    evaluate,
    kind_figures,
    pixel_probe_figures,
    transitions,
)
from services.worldmodel.probes import action_recognition
from services.worldmodel.trainer import Progress, fit
from services.worldmodel.training import TrainState
from shared.models import build_world_model
from shared.models.config import WorldModelConfig
from shared.models.world_model import WorldModel
from shared.pose import random_pose
from shared.scene import LEARNABLE_KINDS

# Default steps per cycle, so that `--cycles 5` on one seed ends within 8 minutes on an idle 2-core
# machine: at the cpu preset's 0.55 - 0.7 s per uncontended step, 5 x 100 steps train in 280 - 350 s,
# and the sweeps, the evaluation after every cycle and the final probes take about 70 s more.
DEFAULT_STEPS = 100
CYCLE_SPAN_S = 4000.0     # simulated seconds from one cycle's sweep to the next (a sweep: ~2,850)
HELD_OUT_T0 = 100_000.0   # the held-out, kind and probe sets come after the sweeps of 25 cycles
PROBE_FIT_T0, PROBE_TEST_T0, ZONE_T0 = 200_000.0, 300_000.0, 150_000.0


def cycle_sweep_seed(seed: int, cycle: int) -> int:
    return 1_000_000 + 1000 * seed + cycle


@dataclasses.dataclass(frozen=True)
class HoldSet:
    """Rounds in which the camera holds still near each zone (`simulate_sweep(hold_share=1.0)`) and
    each frame's per-cell kind fractions: transitions that show only what changes in time."""

    sweep: Sweep
    cells: dict[str, np.ndarray]


def kind_entry(model: WorldModel, held: Sweep, kinds: dict[str, np.ndarray],
               cells: dict[str, np.ndarray] | None, hold: HoldSet | None = None) -> dict:
    """The one-step ratio and the per-kind ratios on `held`: by view fractions (`kinds`) and, with
    `cells`, by each state cell's own kind fractions ("ratio_by_kind_cells"). With `hold`, the
    per-cell ratios on its still transitions ("hold_ratio_by_kind_cells": does the model predict
    time's change?) and their copy error per kind over the moves' mean per-cell copy error
    ("hold_change_by_kind_cells": do the target states see the change at all? near 0 on static
    cells; as large on noise cells as a move's change)."""
    states = encode_dataset(model, held.data)
    fig = kind_figures(model, held.data, kinds, states=states)
    out = {"one_step_ratio": fig["one_step_ratio"], "ratio_by_kind": fig["ratio_by_kind"]}
    if cells is not None:
        by_cell = kind_figures(model, held.data, cells, states=states)
        out["ratio_by_kind_cells"] = by_cell["ratio_by_kind"]
        if hold is not None:
            still = kind_figures(model, hold.sweep.data, hold.cells)
            move_copy = by_cell["copy_error"]  # the mean over transitions, cells and channels
            out["hold_ratio_by_kind_cells"] = still["ratio_by_kind"]
            out["hold_change_by_kind_cells"] = {
                k: None if v is None else v / move_copy for k, v in still["copy_error_by_kind"].items()}
    return out


def cycle_sweep(world: SimWorld, rounds: int, moves: int, *, seed: int, cycle: int, size: int,
                zone_share: float = 0.0, hold_share: float = 0.0) -> Sweep:
    """Cycle `cycle`'s training sweep: `rounds` rounds from random poses, of which a share
    `zone_share` start near the site's learnable zones instead (periodic, movers, detail: what a
    camera that seeks them, and not the noise, would see; 0 is the random camera), and a share
    `hold_share` of the moves hold still (the noop; a camera that dwells)."""
    s = cycle_sweep_seed(seed, cycle)
    t0 = (cycle - 1) * CYCLE_SPAN_S
    near = round(zone_share * rounds)
    if not near:
        return simulate_sweep(world, rounds, moves, seed=s, size=size, t0=t0, hold_share=hold_share)
    rng = random.Random(s)
    zones = zone_starts(world, near, s, kinds=LEARNABLE_KINDS)
    starts = rng.sample(zones, near) + [random_pose(rng, BENCH_RANGES) for _ in range(rounds - near)]
    rng.shuffle(starts)
    return simulate_sweep(world, 0, moves, seed=s, size=size, t0=t0, starts=starts,
                          hold_share=hold_share)


def run_cycles(model: WorldModel, world: SimWorld, cfg: TrainConfig, held: Sweep,
               kinds: dict[str, np.ndarray], *, cells: dict[str, np.ndarray] | None = None,
               cycles: int, rounds: int, moves: int, seed: int,
               max_rounds: int = 60, progress: Progress | None = None, zone_share: float = 0.0,
               hold_share: float = 0.0, hold: HoldSet | None = None
               ) -> tuple[TrainState | None, list[dict], list[dict]]:
    """K cycles of (a new sweep, `cfg.steps` steps resuming one TrainState on the newest
    `max_rounds` rounds of every sweep so far, as the training phase loads its frames; then
    per-kind ratios on `held`, whose frames' kind fractions are `kinds`). Returns (the state,
    learnability entries (`kind_entry`), per-cycle training summaries); the learnability list
    starts with cycle 0, the untrained model (the warp alone); `hold` adds its figures to each."""
    size = model.cfg.encoder.img_size
    state: TrainState | None = None
    learn = [{"cycle": 0, "lifetime_steps": 0, **kind_entry(model, held, kinds, cells, hold)}]
    fits = []
    seen: Sweep | None = None
    for c in range(1, cycles + 1):
        sweep = cycle_sweep(world, rounds, moves, seed=seed, cycle=c, size=size, zone_share=zone_share,
                            hold_share=hold_share)
        seen = recent_rounds(sweep if seen is None else concat_sweeps(seen, sweep), max_rounds)
        result = fit(model, seen.data, cfg, state=state, progress=progress)
        state = result.state
        fits.append({"cycle": c, "frames": len(seen.data), "stop_reason": result.stop_reason,
                     "steps": result.steps,
                     "seconds": round(result.seconds, 1),
                     "transitions_per_s": round(result.transitions_per_s, 1),
                     "final_loss": result.final_loss})
        learn.append({"cycle": c, "lifetime_steps": state.step,
                      **kind_entry(model, held, kinds, cells, hold)})
        print(f"cycle {c}: {result.steps} steps in {result.seconds:.0f} s, one-step ratio "
              f"{learn[-1]['one_step_ratio']:.3f}", file=sys.stderr, flush=True)
    return state, learn, fits


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--panorama", default=None, help="equirectangular image (2:1) to use")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cycles", type=int, default=5, help="training cycles, each on a new sweep")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="optimiser steps per cycle")
    parser.add_argument("--max-rounds", type=int, default=60,
                        help="newest rounds trained on each cycle (the phase's worldmodel.max_rounds)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: the preset's, every core)")
    parser.add_argument("--cycle-cap-s", type=float, default=7200.0,
                        help="wall-clock safety cap per cycle; reported in caps_fired if it fires")
    parser.add_argument("--schedule-steps", type=int, default=None,
                        help="length of the lifelong LR / EMA schedule (default: cycles x steps)")
    parser.add_argument("--rounds", type=int, default=10, help="rounds per sweep")
    parser.add_argument("--moves", type=int, default=20, help="moves per round")
    parser.add_argument("--probe-rounds", type=int, default=200,
                        help="rounds of each probe sweep (a random view, then --probe-moves moves)")
    parser.add_argument("--probe-moves", type=int, default=2)
    parser.add_argument("--zone-rounds", type=int, default=4,
                        help="rounds of the kind set that start near each zone of the site")
    parser.add_argument("--zone-moves", type=int, default=4)
    parser.add_argument("--ema-start", type=float, default=None,
                        help="target-encoder EMA momentum at lifetime step 0 (default: the preset's)")
    parser.add_argument("--ema-end", type=float, default=None,
                        help="EMA momentum at the schedule's end (default: the preset's)")
    parser.add_argument("--wm-set", action="append", default=[], metavar="PART.FIELD=VALUE",
                        help="override a world-model config field (repeatable), e.g. "
                             "encoder.img_size=96, predictor.depth=6, or predictor.time_features=0 "
                             "(no time input, the dt ablation)")
    parser.add_argument("--zone-share", type=float, default=0.0,
                        help="share of each cycle's rounds that start near a learnable zone (0..1; "
                             "0: a random camera, the learnability check)")
    parser.add_argument("--hold-share", type=float, default=0.0,
                        help="share of the cycles' moves that hold still (the noop; 0..1; 0: the "
                             "random camera's 1 in 21)")
    parser.add_argument("--all-surprise", action="store_true",
                        help="also train the grad_norm head and the bootstrap ensemble")
    args = parser.parse_args(argv)
    if args.cycles < 1 or args.steps < 1:
        parser.error("--cycles and --steps must be at least 1")
    if not 0.0 <= args.zone_share <= 1.0:
        parser.error("--zone-share must be within 0..1")
    if not 0.0 <= args.hold_share <= 1.0:
        parser.error("--hold-share must be within 0..1")
    try:
        override_config(bench_configs()[0], args.wm_set)
    except ValueError as exc:  # ConfigError included
        parser.error(f"--wm-set: {exc}")
    return args


def headline(metrics: dict, by_kind: dict, learn: list[dict]) -> dict:
    """The bench's figures, by the names docs/worldmodel.md uses: `metrics` from `evaluate` on the
    held-out sweep, `by_kind` from `kind_figures` on the kind set."""
    return {
        "one_step_ratio": metrics["one_step_ratio"],
        "rollout_ratio": {h: metrics["rollout_ratio"].get(h) for h in ("1", "5", "10")},
        "ratio_by_kind": by_kind["ratio_by_kind"],
        "ratio_by_kind_cells": learn[-1].get("ratio_by_kind_cells"),
        "action_top1": metrics["action"]["top1"],
        "inverse_r2": metrics["inverse"]["r2"],
        "collapse_r2": {k: metrics["collapse_r2"][k] for k in ("tilt", "log_zoom")},
        "place_pan_err_deg": metrics["place"]["median_pan_err_deg"],
        "learnability": learn,
        "surprise_spearman": metrics["surprise_spearman"],
    }


def action_top1(model: WorldModel, held: Sweep) -> float:
    """Action recognition top-1 on the held-out pairs (the bench reports it for the untrained
    model too: the warp's geometry alone already tells many moves apart)."""
    data = held.data
    src, dst = transitions(data)
    states = encode_dataset(model, data)
    return action_recognition(model, states, data.poses, data.times[dst] - data.times[src], src, dst,
                              data.ranges, BENCH_SCALE)["top1"]


def run_configs(args: argparse.Namespace, hfov_deg: float) -> tuple[WorldModelConfig, TrainConfig]:
    """The bench's configs with the command line's overrides applied."""
    wm_cfg, tr_cfg = bench_configs(args.all_surprise, hfov_deg)
    wm_cfg = override_config(wm_cfg, args.wm_set)
    # Steps bound each cycle; the wall-clock cap is a safety limit only (a busy machine must not
    # change the figures), reported in "caps_fired" when it cuts a cycle short.
    tr_cfg = tr_cfg.replace(steps=args.steps,
                            schedule_steps=args.schedule_steps or args.cycles * args.steps,
                            time_budget_s=args.cycle_cap_s, threads=args.threads or tr_cfg.threads)
    if args.ema_start is not None or args.ema_end is not None:
        tr_cfg = tr_cfg.replace(ema_start=tr_cfg.ema_start if args.ema_start is None else args.ema_start,
                                ema_end=tr_cfg.ema_end if args.ema_end is None else args.ema_end)
    return wm_cfg, tr_cfg


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    start = time.monotonic()
    load_start = os.getloadavg()[0]
    world = make_world(args.seed, args.panorama)
    wm_cfg, tr_cfg = run_configs(args, world.config.base_hfov_deg)
    size = wm_cfg.encoder.img_size
    held = simulate_sweep(world, args.rounds, args.moves, seed=2000 + args.seed, size=size,
                          t0=HELD_OUT_T0)
    zones = simulate_sweep(world, 0, args.zone_moves, seed=5000 + args.seed, size=size,
                           t0=ZONE_T0, starts=zone_starts(world, args.zone_rounds, 5000 + args.seed))
    kind_set = concat_sweeps(held, zones)
    kinds = frame_kinds(world, kind_set.data)
    grid = wm_cfg.encoder.img_size // wm_cfg.encoder.patch_size
    cells = cell_kinds(world, kind_set.data, grid)
    still = simulate_sweep(world, 0, args.zone_moves, seed=6000 + args.seed, size=size, t0=ZONE_T0,
                           starts=zone_starts(world, args.zone_rounds, 6000 + args.seed), hold_share=1.0)
    hold = HoldSet(still, cell_kinds(world, still.data, grid))
    probe_fit = simulate_sweep(world, args.probe_rounds, args.probe_moves, seed=3000 + args.seed,
                               size=size, t0=PROBE_FIT_T0)
    probe_test = simulate_sweep(world, args.probe_rounds, args.probe_moves, seed=4000 + args.seed,
                                size=size, t0=PROBE_TEST_T0)
    model = build_world_model(wm_cfg)
    top1_at_init = action_top1(model, held)
    state, learn, fits = run_cycles(model, world, tr_cfg, kind_set, kinds, cells=cells,
                                    cycles=args.cycles,
                                    rounds=args.rounds, moves=args.moves, seed=args.seed,
                                    max_rounds=args.max_rounds, zone_share=args.zone_share,
                                    hold_share=args.hold_share,
                                    hold=hold)
    eval_start = time.monotonic()
    metrics = evaluate(model, held.data, probe_fit=probe_fit.data, probe_test=probe_test.data,
                       action_scale=BENCH_SCALE)
    by_kind = kind_figures(model, kind_set.data, kinds)
    pixels = pixel_probe_figures(probe_fit.data, probe_test.data)
    out = {**headline(metrics, by_kind, learn),
           "action_top1_at_init": top1_at_init,
           "pixel_reference": {"inverse_r2": pixels["inverse"]["r2"],
                               "collapse_r2": {k: pixels["collapse_r2"][k] for k in ("tilt", "log_zoom")},
                               "place_pan_err_deg": pixels["place"]["median_pan_err_deg"]},
           "caps_fired": sum(f["stop_reason"] == "time_budget" for f in fits),
           "steps": {"per_cycle": args.steps, "cycles": args.cycles,
                     "lifetime": state.step if state is not None else 0,
                     "schedule_steps": tr_cfg.schedule_steps},
           "details": {**metrics, "kind_weight": by_kind["kind_weight"], "pixel_probes": pixels,
                       "kind_set_transitions": len(kind_set.data) - len(kind_set.data.rounds())},
           "kind_protocol": (f"kind set: the held-out sweep plus {args.zone_rounds} rounds x "
                             f"{args.zone_moves + 1} frames starting near each zone of the site "
                             f"(seed {5000 + args.seed}); fraction-weighted: each transition counts "
                             f"for every zone kind with the fraction of its target view that shows it"),
           "probe_protocol": (f"probe sweeps of the same site: {args.probe_rounds} rounds x "
                              f"{args.probe_moves + 1} frames each, fit seed {3000 + args.seed} "
                              f"(t0 {PROBE_FIT_T0:.0f} s), score seed {4000 + args.seed} "
                              f"(t0 {PROBE_TEST_T0:.0f} s); ridge lambda by 5-fold CV; the encoder "
                              f"trained only on the cycles' sweeps"),
           "training": fits,
           "seed": args.seed, "scene": world.info()["source"], "preset": "cpu",
           "config": {"world_model": wm_cfg.to_dict(), "train": tr_cfg.to_dict(),
                      "action_scale": dataclasses.asdict(BENCH_SCALE),
                      "ranges": dataclasses.asdict(BENCH_RANGES),
                      "rounds": args.rounds, "moves": args.moves, "panorama": args.panorama,
                      "zone_share": args.zone_share, "hold_share": args.hold_share},
           "machine": machine(load_start),
           "seconds": {"evaluation": round(time.monotonic() - eval_start, 1),
                       "training": round(sum(f["seconds"] for f in fits), 1),
                       "wall": round(time.monotonic() - start, 1)}}
    write_result(args.out, out)
    return out


if __name__ == "__main__":
    main()
