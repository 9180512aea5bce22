"""Dreaming and agent-training throughput per preset.

    python bench/agent_throughput.py --out bench/results/agent_throughput.json [--presets cpu,paper]

- dream_sps: imagined steps per second of `services.dreamer.rollout.generate` (a batch of dreams
  advancing together, one world-model `predict` call per step), fresh `build_world_model(preset)`
  weights (speed does not depend on training), `--dream-batch` dreams x `--dream-length` steps.
  The dreams carry the measured error map as the system's do (`services.dreamer.error_map`,
  fitted untimed on a few random rounds of random states), so the agent can train on the
  preset's default reward, a measured one.
- agent_ups: double-DQN updates per second of `services.agent.dqn.train` at the preset's
  AgentConfig, on a replay memory filled with dream transitions of the preset's observation size;
  agent_tps = transitions per second (updates x batch size), the figure comparable to the
  original's 3 transitions/s.
- peak_rss_mb: the peak resident memory of the process that measured the preset (each preset runs
  in its own child process so the figures do not mix).
Writes and prints JSON: {"cpu": {...}, "paper": {...}, "machine": ...}.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.output import machine, write_result

ORIGINAL = {"dream_sps": 7.4, "agent_tps": 3.0, "agent_peak_gb": 7.9}


def random_error_map(model, ranges, gen, rounds: int = 4, moves: int = 8):
    """An error map measured on `rounds` random walks of `moves` random actions over random
    states: the dreams then carry the measured tensors as the system's do (values do not change
    the arithmetic)."""
    import numpy as np
    import torch

    from services.dreamer.error_map import error_map_from_frames
    from services.dreamer.rollout import advance_poses
    from shared.pose import N_ACTIONS, ActionScale

    enc = model.cfg.encoder
    pose = torch.tensor([[float(p), 0.0, 2.0] for p in np.linspace(0, 270, rounds)],
                        dtype=torch.float64)
    walk = [pose]
    for _ in range(moves):
        pose = advance_poses(pose, torch.randint(N_ACTIONS, (rounds,), generator=gen), ranges,
                             ActionScale())
        walk.append(pose)
    poses = torch.stack(walk, 1).reshape(-1, 3).numpy()  # round-major: each round's frames in order
    states = torch.randn(len(poses), enc.n_tokens, enc.dim, generator=gen)
    states = torch.nn.functional.layer_norm(states, states.shape[-1:])
    return error_map_from_frames(model, states, poses, np.repeat(np.arange(rounds), moves + 1),
                                 ranges, ActionScale(),
                                 times=np.tile(np.arange(moves + 1, dtype=np.float64), rounds))


def measure(preset: str, args) -> dict:
    import numpy as np
    import torch

    from services.agent.config import AgentConfig
    from services.agent.dqn import make_agent, replay_from_dreams, train
    from services.agent.qnet import QNetwork
    from services.dreamer.rollout import generate
    from shared.dreams import ObservationSpec
    from shared.models import build_world_model
    from shared.pose import PoseRanges

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = build_world_model(preset).eval()
    enc = model.cfg.encoder
    ranges = PoseRanges(0.0, 360.0, -30.0, 30.0, 1.0, 10.0, True)
    spec = ObservationSpec()
    gen = torch.Generator().manual_seed(0)
    b, length = args.dream_batch, args.dream_length
    states = torch.randn(b, enc.n_tokens, enc.dim, generator=gen)
    states = torch.nn.functional.layer_norm(states, states.shape[-1:])
    poses = np.column_stack([np.linspace(0, 350, b), np.zeros(b), np.full(b, 2.0)])
    emap = random_error_map(model, ranges, gen)
    generate(model, states, poses, ranges, 1, gen, spec=spec, error_map=emap)  # warm-up
    steps, start, dreams = 0, time.perf_counter(), []
    while True:
        dreams.append(generate(model, states, poses, ranges, length, gen, spec=spec,
                               error_map=emap))
        steps += b * length
        dream_s = time.perf_counter() - start
        if dream_s >= args.seconds:
            break
    dream_sps = steps / dream_s

    cfg = AgentConfig.preset(preset)
    torch.set_num_threads(args.agent_threads)
    mem = replay_from_dreams(dreams, cfg)
    state = make_agent(cfg, dreams[0].obs_dim)
    train(state, mem, updates=20)  # warm-up (and normaliser fit)
    res = train(state, mem, updates=10_000_000, time_budget_s=args.seconds, fit_normaliser=False)
    net = QNetwork(dreams[0].obs_dim, cfg.hidden)
    params = net.n_parameters()
    return {
        "dream_sps": round(dream_sps, 2),
        "dream_batch": b, "dream_length": length, "dream_threads": args.threads,
        "agent_ups": round(res.updates / res.seconds, 1),
        "agent_tps": round(res.transitions_per_s, 1),
        "agent_batch": cfg.batch_size, "agent_threads": args.agent_threads,
        "agent_reward": cfg.reward,
        "agent_parameters": params, "agent_mb_fp32": round(params * 4 / 1e6, 2),
        "obs_dim": dreams[0].obs_dim,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "vs_original": {"dream_sps_x": round(dream_sps / ORIGINAL["dream_sps"], 2),
                        "agent_tps_x": round(res.transitions_per_s / ORIGINAL["agent_tps"], 1)},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", help="JSON file to write")
    p.add_argument("--presets", default="cpu,paper")
    p.add_argument("--seconds", type=float, default=10.0, help="measuring time per figure")
    p.add_argument("--dream-batch", type=int, default=32)
    p.add_argument("--dream-length", type=int, default=10)
    p.add_argument("--threads", type=int, default=2, help="torch threads for dreaming")
    p.add_argument("--agent-threads", type=int, default=1,
                   help="torch threads for agent updates (small MLPs: 1 is fastest here)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args)))
        return
    out = {}
    for preset in args.presets.split(","):
        cmd = [sys.executable, __file__, "--child", preset, "--seconds", str(args.seconds),
               "--dream-batch", str(args.dream_batch), "--dream-length", str(args.dream_length),
               "--threads", str(args.threads), "--agent-threads", str(args.agent_threads)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode:
            raise SystemExit(f"measuring {preset} failed:\n{res.stderr}")
        out[preset] = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"{preset}: {out[preset]}", file=sys.stderr, flush=True)
    out["original"] = ORIGINAL
    out["targets_paper"] = {"dream_sps": ">= 74", "agent_tps": ">= 150"}
    out["machine"] = machine()
    if args.out:
        write_result(args.out, out)
    else:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
