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


RESCALES = ("none", "global", "transition")
# A transition whose copy error is below this fraction of the mean is not rescaled by its own
# (near-zero) copy error: a frame that hardly changed gives no scale worth dividing by.
COPY_FLOOR_FRAC = 0.05


def token_progress(m_old: dict, m_new: dict, rescale: str = "none") -> np.ndarray:
    """(M, T) per-token progress from the old and new model's `measure_transitions` of the same
    transitions: the old error minus the new, optionally with the old error first brought to the
    new model's scale. Each model is measured in its own state space, and training moves that space: a space
    that spreads views further apart raises every error in it, learnt or not (measured: each
    version's raw error rose while its ratio to its own copy baseline fell). `rescale`: "none"
    (raw difference), "global" (old errors times the ratio of the two models' summed copy errors)
    or "transition" (each transition's own copy-error ratio, the drop of the error-to-copy ratio
    in the new model's units). The dreamer pays the raw difference: the rescaled ones remove the
    negative drift but pay the noise screen no less than the learnable zones (measured,
    docs/experiments.md), and no agent has been measured on them yet."""
    old, new = m_old["token_errors"], m_new["token_errors"]
    if rescale == "none":
        return old - new
    c_old = np.asarray(m_old["copy_errors"], dtype=np.float64)
    c_new = np.asarray(m_new["copy_errors"], dtype=np.float64)
    if rescale == "global":
        return old * (c_new.sum() / max(c_old.sum(), 1e-12)) - new
    if rescale != "transition":
        raise ValueError(f"rescale must be one of {RESCALES}, got {rescale!r}")
    floor = COPY_FLOOR_FRAC * max(c_old.mean(), 1e-12)
    ratio = np.maximum(c_new, floor) / np.maximum(c_old, floor)
    return old * ratio[:, None] - new


def progress_map(old: WorldModel, new: WorldModel, frames, poses, round_ids, times,
                 ranges: PoseRanges, scale: ActionScale, *, new_states: torch.Tensor | None = None,
                 new_measured: dict | None = None,
                 max_transitions: int | None = 2000) -> ErrorMap:
    """The error map of (old model's measured error - new model's) on the real transitions of
    `frames` (uint8 (N, H, W, 3)) with raw `poses`, `round_ids` and capture `times`;
    `new_measured` may be the new model's measurements of them (`measure_transitions`, with the
    same `max_transitions`), `new_states` its encodings, already computed; the drop is
    `token_progress`'s raw one. Raises ErrorMapError
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
    drop = token_progress(m_old, m_new)
    return fit_error_map(m_new["source_poses"], m_new["dest_poses"], m_new["actions"],
                         np.mean(drop, axis=1), drop, new.cfg.predictor.warp_hfov_deg)
