"""Learning progress: where the world model's error on this site's real frames fell between its
previous version and this one.

The measured error map (services.dreamer.error_map) pays the model's current error, which a zone
the model cannot learn keeps high forever: white noise on a screen draws an agent paid by error
and teaches the model nothing there (the "noisy TV" of the curiosity literature). Learning
progress pays the drop of that error between an older model and the current one (Oudeyer's
intrinsic motivation; Kim et al. 2020, gamma-Progress): about zero where nothing can be learnt
(once the model predicts the noise's average, newer versions predict it no better) and where
nothing is left to learn, positive where training still helps.

Both models are measured on the same real transitions (consecutive frames of a round, each for
the seconds between its frames), each in its own state space (its own target encoder: a model is
judged by the loss it trains on), and the error map is fitted to the per-token differences
old - new, so the progress map has the error map's two terms: a move term per action and a view
atlas per direction of the scene, read along dreamed poses like the measured map.

The older model is the previous published version of the slot (its lineage parent); the first
version of a slot has none and is compared with a freshly initialised model of its config: the
predictor is residual over the pose-aware warp, so an untrained model is the warp baseline, and
that first progress is what training has gained over the camera geometry alone.
"""

from __future__ import annotations

import numpy as np
import torch

from services.dreamer.error_map import ErrorMap, fit_error_map, measure_transitions
from services.dreamer.rollout import encode_frames
from shared.models import build_world_model
from shared.models.world_model import WorldModel
from shared.pose import ActionScale, PoseRanges

FRESH_SEED = 0  # the initialisation the first version of a slot is compared with


def fresh_model_like(model: WorldModel) -> WorldModel:
    """An untrained model of `model`'s config, the same every time (seeded), on its device."""
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(FRESH_SEED)
        fresh = build_world_model(model.cfg)
    finally:
        torch.random.set_rng_state(state)
    return fresh.to(next(model.parameters()).device).eval()


def progress_map(old: WorldModel, new: WorldModel, frames, poses, round_ids, times,
                 ranges: PoseRanges, scale: ActionScale, *, new_states: torch.Tensor | None = None,
                 new_measured: dict | None = None,
                 max_transitions: int | None = 2000) -> ErrorMap:
    """The error map of (old model's measured error - new model's) on the real transitions of
    `frames` (uint8 (N, H, W, 3)) with raw `poses`, `round_ids` and capture `times`;
    `new_measured` may be the new model's measurements of them (`measure_transitions`, with the
    same `max_transitions`), `new_states` its encodings, already computed. Raises ErrorMapError
    as the error map does when no transition can be measured."""
    m_new = new_measured
    if m_new is None:
        if new_states is None:
            new_states = encode_frames(new, frames)
        m_new = measure_transitions(new, new_states, poses, round_ids, ranges, scale,
                                    max_transitions=max_transitions, times=times)
    old_states = encode_frames(old, frames)
    m_old = measure_transitions(old, old_states, poses, round_ids, ranges, scale,
                                max_transitions=max_transitions, times=times)
    drop = m_old["token_errors"] - m_new["token_errors"]
    return fit_error_map(m_new["source_poses"], m_new["dest_poses"], m_new["actions"],
                         np.mean(drop, axis=1), drop, new.cfg.predictor.warp_hfov_deg)
