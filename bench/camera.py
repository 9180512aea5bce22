"""Benchmark of the camera path: simulator render time and the REST round trip of move + snapshot.

`python bench/camera.py --out FILE` writes and prints
`{"render_ms_median": ..., "move_snapshot_ms_median": ..., ...}`. The round trip is measured
against the real camera service (uvicorn on loopback, the simulated camera behind it, default
settings: 224x224 JPEG snapshots), with a real HTTP client, as a collection job does it.
`zone_pose_kind_fractions` is the share of each zone kind in the view centred on each zone (zoom 8,
the default site), the simulator's ground truth. Targets: render of a 224x224 view <= 8 ms median
on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.output import write_result
from tests.support.servers import free_port


def measure_rest(n: int = 200, seed: int = 0) -> dict:
    import httpx
    import uvicorn

    from services.camera.app import create_app
    from shared.config import load_settings

    data_dir = Path(tempfile.mkdtemp(prefix="ptzjepa-bench-"))
    port = free_port()
    settings = load_settings(environ={}, data_dir=data_dir, services={"camera_port": port})
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    ranges = settings.camera.ranges()
    rng = random.Random(seed)
    move_ms, snap_ms, both_ms = [], [], []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for i in range(n + 10):
                body = {"mode": "absolute", "pan": rng.uniform(ranges.pan_min, ranges.pan_max),
                        "tilt": rng.uniform(ranges.tilt_min, ranges.tilt_max),
                        "zoom": rng.uniform(ranges.zoom_min, ranges.zoom_max)}
                t0 = time.perf_counter()
                http.post("/v1/move", json=body).raise_for_status()
                t1 = time.perf_counter()
                http.get("/v1/snapshot").raise_for_status()
                t2 = time.perf_counter()
                if i >= 10:  # warm-up excluded
                    move_ms.append((t1 - t0) * 1000)
                    snap_ms.append((t2 - t1) * 1000)
                    both_ms.append((t2 - t0) * 1000)
    finally:
        server.should_exit = True
        thread.join(10)
    return {
        "move_snapshot_ms_median": round(float(np.median(both_ms)), 3),
        "move_snapshot_ms_p90": round(float(np.percentile(both_ms, 90)), 3),
        "move_ms_median": round(float(np.median(move_ms)), 3),
        "snapshot_ms_median": round(float(np.median(snap_ms)), 3),
        "rest_n": n,
        "snapshot_size": [settings.camera.sim.width, settings.camera.sim.height],
    }


def zone_pose_kind_fractions(seed: int = 0, zoom: float = 8.0) -> dict[str, dict[str, float]]:
    """Per zone of the default site, the kind fractions of the 224x224 view centred on it."""
    from services.camera.sim import SimWorld, SimWorldConfig
    from shared.config import load_settings

    world = SimWorld(SimWorldConfig(seed=seed, ranges=load_settings(environ={}).camera.ranges()))
    return {name: {kind: round(f, 3) for kind, f in world.kind_fractions(pose, 224, 224).items()}
            for name, pose in world.zone_poses(zoom).items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="camera render and REST round-trip benchmark")
    parser.add_argument("--out", type=Path, required=True, help="write the JSON result here")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from bench.camera_render import measure_render
    from shared.config import load_settings

    render = measure_render(args.n, args.seed, ranges=load_settings(environ={}).camera.ranges())
    result = {
        "render_ms_median": render["median_ms"],
        "render_ms_p90": render["p90_ms"],
        "render_target_ms": 8.0,
        **measure_rest(args.n, args.seed),
        "random_pose_mostly_dynamic_fraction": render["random_pose_zone_fraction_gt_half"],
        "world_build_s": render["world_build_s"],
        "zone_pose_kind_fractions": zone_pose_kind_fractions(args.seed),
        "cpu_count": os.cpu_count(),
    }
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
