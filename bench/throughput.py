"""World-model training throughput, peak memory and sharing-checkpoint size per preset.

    python bench/throughput.py --out bench/results/throughput.json [--presets cpu,paper]

Each preset runs in a fresh subprocess (so peak resident memory, ru_maxrss of that child, is the
preset's own): build the model and its training config, make an in-memory data set of random
frames at the model's resolution (content does not change the arithmetic), run warm-up steps, then
time `--steps` training steps (default: the preset's TIMED_STEPS, about a minute each on an idle
2-core machine; `--max-seconds` caps them, reported as "capped"). A transition is one (source
state, target frame) prediction that receives a loss: every ordered pair inside a window plus each
rollout step. Writes and prints JSON: {preset: {"wm_train_tps", "peak_rss_mb", "share_ckpt_mb", ...}}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.output import machine, write_result

# Timed steps per preset: about 60 s on an idle 2-core machine (0.7 s and 4.2 s per step).
TIMED_STEPS = {"cpu": 80, "paper": 15}


def worker(preset: str, steps: int | None, max_seconds: float, warmup: int,
           threads: int | None) -> dict:
    import numpy as np
    import torch

    from services.worldmodel.config import TrainConfig
    from services.worldmodel.data import FrameDataset, WindowSampler
    from services.worldmodel.training import make_train_state, train_step, use_bf16
    from shared.models import WorldModelConfig, build_world_model
    from shared.models.checkpoint import share_bytes

    torch.manual_seed(0)
    wm_cfg = WorldModelConfig.preset(preset)
    cfg = TrainConfig.preset(preset)
    n_threads = threads or cfg.threads  # as fit() does: the preset's thread count unless overridden
    if n_threads:
        torch.set_num_threads(n_threads)
    model = build_world_model(wm_cfg)
    rng = np.random.default_rng(0)
    n, size = 84, wm_cfg.encoder.img_size
    frames = rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8)
    poses = np.stack([rng.uniform(0, 360, n), rng.uniform(-20, 90, n), rng.uniform(1, 20, n)], 1)
    times = np.arange(n, dtype=np.float64) * 2.0  # one frame every 2 s, as a sweep records them
    data = FrameDataset(frames, poses, np.repeat(np.arange(n // 21), 21), times)
    sampler = WindowSampler(data, size, cfg.window_len, cfg.windows_per_batch)
    state = make_train_state(model, cfg)
    for _ in range(warmup):
        train_step(state, sampler.sample(state.generator), cfg)
    target = max(2, steps or TIMED_STEPS.get(preset, 20))
    steps, transitions, step_times = 0, 0, []
    start = time.perf_counter()
    while steps < target and (steps < 2 or time.perf_counter() - start < max_seconds):
        batch = sampler.sample(state.generator)
        t = time.perf_counter()
        m = train_step(state, batch, cfg)
        step_times.append(time.perf_counter() - t)
        transitions += m["transitions"]
        steps += 1
    elapsed = time.perf_counter() - start
    share = share_bytes(model, fp16=True)
    return {
        "wm_train_tps": round(transitions / elapsed, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "share_ckpt_mb": round(len(share) / 1e6, 2),
        "share_ckpt_fp32_mb": round(len(share_bytes(model)) / 1e6, 2),
        "steps": steps, "capped": steps < target, "transitions_per_step": transitions // steps,
        "mean_step_s": round(elapsed / steps, 3),
        "median_step_s": round(sorted(step_times)[len(step_times) // 2], 3),
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "bf16": use_bf16(cfg, torch.device("cpu")), "threads": torch.get_num_threads(),
        "train_config": {k: v for k, v in cfg.to_dict().items()
                         if k in ("window_len", "windows_per_batch", "train_queries",
                                  "rollout_horizon", "rollout_chains", "rollout_bptt", "amp",
                                  "threads")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--presets", default="cpu,paper")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed training steps per preset (default: cpu 80, paper 15)")
    parser.add_argument("--max-seconds", type=float, default=600.0,
                        help="safety cap of the timed steps per preset; a capped run says so")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--agent-seconds", type=float, default=10.0,
                        help="timed dreaming and agent training per preset (bench/agent_throughput.py)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        result = worker(args.worker, args.steps, args.max_seconds, args.warmup, args.threads)
        Path(args.worker_out).write_text(json.dumps(result))
        return

    results: dict = {}
    load_start = os.getloadavg()[0]
    for preset in [p.strip() for p in args.presets.split(",") if p.strip()]:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "r.json"
            cmd = [sys.executable, __file__, "--out", args.out, "--worker", preset,
                   "--worker-out", str(out), "--max-seconds", str(args.max_seconds),
                   "--warmup", str(args.warmup)]
            if args.steps:
                cmd += ["--steps", str(args.steps)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                results[preset] = {"error": proc.stderr.strip().splitlines()[-1:]}
            else:
                results[preset] = json.loads(out.read_text())
        # Dreams and agent updates, measured by bench/agent_throughput.py in a fresh
        # process too, merged here so that one file holds every throughput figure of a preset.
        agent_bench = Path(__file__).with_name("agent_throughput.py")
        proc = subprocess.run([sys.executable, str(agent_bench), "--child", preset,
                               "--seconds", str(args.agent_seconds)], capture_output=True, text=True)
        if proc.returncode != 0:
            results[preset]["dream_agent_error"] = proc.stderr.strip().splitlines()[-1:]
        else:
            extra = json.loads(proc.stdout.strip().splitlines()[-1])
            results[preset].update({"dream_sps": extra["dream_sps"], "agent_ups": extra["agent_ups"],
                                    "agent_tps": extra["agent_tps"],
                                    "dream_agent_peak_rss_mb": extra["peak_rss_mb"],
                                    "dream_agent_vs_original": extra["vs_original"]})
        print(f"{preset}: {results[preset]}", file=sys.stderr, flush=True)
    results["machine"] = machine(load_start)
    write_result(args.out, results)


if __name__ == "__main__":
    main()
