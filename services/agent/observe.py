"""Run-time observations: camera frames + poses -> the agent's observation vectors.

`observe` is `shared.dreams.observation_from_states` applied to `model.encode_state(frames)`: the
very function the dreamer applies to imagined states, in the same (target-encoder) state space, so
an agent trained on dreams sees the same kind of vector when it drives the real camera.
"""

from __future__ import annotations

import numpy as np
import torch

from shared.dreams import ObservationSpec, observation_from_states
from shared.models.world_model import WorldModel
from shared.pose import PoseRanges


@torch.no_grad()
def observe(model: WorldModel, frames, poses, ranges: PoseRanges,
            spec: ObservationSpec = ObservationSpec(), states_out: list | None = None) -> torch.Tensor:
    """uint8 (B, H, W, 3) frames (or one (H, W, 3)) and raw (B, 3) poses -> (B, obs_dim) float32.

    `states_out`, when a list, receives the encoded states (for callers that also need them).
    """
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 3)
    model.eval()
    states = model.encode_state(np.ascontiguousarray(frames))
    if states_out is not None:
        states_out.append(states)
    return observation_from_states(states, poses, ranges, spec).cpu()
