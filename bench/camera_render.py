"""Benchmark: how fast the simulated PTZ world renders views, and how its dynamic zones are spread.

Run `python bench/camera_render.py [--n 200] [--seed 0] [--out FILE.json]`; other benchmark scripts
import `measure_render`. Target: median 224x224 render <= 8 ms on a 2-core machine, dynamics
included; a random pose should look mostly at a dynamic zone in roughly 5-15% of cases.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def measure_render(n: int = 200, seed: int = 0, width: int = 224, height: int = 224,
                   warmup: int = 20, zone_samples: int = 1000, ranges=None) -> dict:
    """Median/p90 render time over `n` uniformly random poses and times (after `warmup` renders),
    plus world build time and the share of random poses whose view is mostly a dynamic zone."""
    import numpy as np

    from services.camera.sim import SimWorld, SimWorldConfig
    from shared.pose import Pose

    t0 = time.perf_counter()
    world = SimWorld(SimWorldConfig(seed=seed) if ranges is None
                     else SimWorldConfig(seed=seed, ranges=ranges))
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed + 12345)
    r = world.ranges

    def uniform_pose() -> Pose:
        """Uniform in pan, tilt and zoom alike; `shared.pose.random_pose` (the sweep's) draws
        zoom log-uniformly, another distribution of views, so it is not used here."""
        return Pose(float(rng.uniform(r.pan_min, r.pan_max)),
                    float(rng.uniform(r.tilt_min, r.tilt_max)),
                    float(rng.uniform(r.zoom_min, r.zoom_max)))

    for _ in range(warmup):
        world.render(uniform_pose(), float(rng.uniform(0, 600)), width, height)
    times = []
    for _ in range(n):
        pose, t = uniform_pose(), float(rng.uniform(0, 600))
        start = time.perf_counter()
        world.render(pose, t, width, height)
        times.append(time.perf_counter() - start)
    ms = np.array(times) * 1000.0
    zone = np.array([world.dynamic_zone_fraction(uniform_pose()) for _ in range(zone_samples)])
    return {
        "n": n,
        "seed": seed,
        "width": width,
        "height": height,
        "median_ms": round(float(np.median(ms)), 3),
        "p90_ms": round(float(np.percentile(ms, 90)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "max_ms": round(float(ms.max()), 3),
        "target_median_ms": 8.0,
        "world_build_s": round(build_s, 3),
        "panorama_size": [world.pano_width, world.pano_height],
        "random_pose_zone_fraction_gt_half": round(float((zone > 0.5).mean()), 4),
        "zone_samples": zone_samples,
        "cpu_count": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    result = measure_render(args.n, args.seed)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp.write_text(text + "\n")
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
    raise SystemExit(main())
