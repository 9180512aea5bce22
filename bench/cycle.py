"""Benchmark: wall time of full learning cycles at the `cpu` preset, through the real services.

`python bench/cycle.py --out FILE` starts an embedded node (Redis, camera on the simulator, one rq
worker per queue, coordinator) in a temporary folder and runs two cycles over REST, as a user would:
cycle 1 = random sweep (10 x 21 frames), world-model training (the preset's `steps`, or
`--steps`), `dreamer.dreams` dreams of 10 steps (`--dreams`; the target's cycle has 64), agent
training (the preset's `updates`, or `--agent-updates`); cycle 2 = the agent drives the camera
(10 x 20 moves), then the same learning phases. Training is bounded by work, not time: the
phases' time caps are safety limits, and `caps_fired` names every phase that hit one.
`cycle_seconds` is the target's "one full cycle": sweep + world model + dreams + agent of cycle 1
plus the navigation of cycle 2. By default the
run ends once cycle 2's navigation has finished (`--whole-second-cycle` waits for all of it).
Target: one full cycle under 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.output import write_result
from tests.support.servers import free_port_block


def _settings(args: argparse.Namespace):
    """A node in a temporary folder, with the command line's budgets over the preset's."""
    from shared.config import load_settings

    overrides: dict = {}
    if args.dreams:
        overrides["dreamer"] = {"dreams": args.dreams}
    if args.steps:
        overrides["worldmodel"] = {"train": {"steps": args.steps}}
    if args.agent_updates:
        overrides["agent"] = {"config": {"updates": args.agent_updates}}
    base = free_port_block(12)
    return load_settings(environ={}, preset=args.preset,
                         data_dir=Path(tempfile.mkdtemp(prefix="ptzjepa-cycle-")),
                         services={"coordinator_port": base, "camera_port": base + 1,
                                   "worker_metrics_port": base + 2}, **overrides)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="full-cycle wall time at the cpu preset")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--preset", default="cpu", choices=["cpu", "paper"])
    parser.add_argument("--dreams", type=int, default=None,
                        help="dreams per dreamer job (default: the settings' default; the target's "
                             "cycle has 64)")
    parser.add_argument("--steps", type=int, default=None,
                        help="world-model optimiser steps per job (default: the preset's)")
    parser.add_argument("--agent-updates", type=int, default=None,
                        help="agent updates per job (default: the preset's)")
    parser.add_argument("--whole-second-cycle", action="store_true",
                        help="wait for cycle 2's learning phases too (not part of cycle_seconds)")
    args = parser.parse_args(argv)

    import httpx

    from services.coordinator.launcher import Node

    settings = _settings(args)
    views, shown = [], ""
    started = time.perf_counter()
    with Node(settings) as node, httpx.Client(base_url=node.coordinator_url, timeout=30) as http:
        startup_s = time.perf_counter() - started
        for n in range(2):
            cycle = http.post("/v1/cycles").json()
            while True:
                view = http.get(f"/v1/cycles/{cycle['id']}").json()
                if view["status"] != "running":
                    break
                if n == 1 and not args.whole_second_cycle and \
                        view["phases"][0]["status"] == "finished":
                    break  # cycle_seconds needs only cycle 2's navigation; the node stops the rest
                line = f"cycle {n + 1}: " + ", ".join(f"{p['name']} {p['status']}"
                                                      for p in view["phases"])
                if line != shown:  # progress: each phase change
                    print(f"{time.perf_counter() - started:7.1f}s {line}", file=sys.stderr,
                          flush=True)
                    shown = line
                time.sleep(2.0)
            if view["status"] not in ("finished", "running"):
                raise SystemExit(f"cycle {view['id']} {view['status']}: {view.get('reason')}")
            views.append(view)

    def phases(view):
        return {p["name"]: round(p["seconds"], 2) for p in view["phases"]
                if p.get("seconds") is not None}

    def span(view):
        return round(view["ended_at"] - view["created_at"], 2)

    first, second = phases(views[0]), phases(views[1])
    results = {f"cycle{n + 1}.{p['name']}": p.get("result") or {}
               for n, view in enumerate(views) for p in view["phases"]}
    result = {
        "preset": args.preset,
        "cycle_seconds": round(span(views[0]) + second["navigate"], 2),
        "collect_cycle_seconds": span(views[0]),
        "navigate_cycle_seconds": span(views[1]) if views[1]["status"] == "finished" else None,
        "phase_seconds": {"cycle1": first, "cycle2": second},
        "worldmodel": {k: views[0]["phases"][1]["result"].get(k)
                       for k in ("steps", "lifetime_steps", "epochs", "stop_reason", "final_loss",
                                 "frames", "transitions_per_s")},
        "dreams": settings.dreamer.dreams,
        "agent": {k: views[0]["phases"][3]["result"].get(k)
                  for k in ("updates", "stop_reason", "updates_per_s")},
        "navigation": {k: views[1]["phases"][0]["result"].get(k)
                       for k in ("frames", "mean_dynamic_fraction", "mean_observed_error")},
        # Phases stopped by their wall-clock safety cap instead of their step / update budget.
        "caps_fired": sorted(k for k, r in results.items() if r.get("stop_reason") == "time_budget"),
        "node_startup_s": round(startup_s, 2),
        "target_seconds": 600,
        "cpu_count": os.cpu_count(),
    }
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
