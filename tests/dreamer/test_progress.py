"""Learning progress on tiny real models: zero on a frozen model, positive where training lowered
the error; the terms travel through dreams and shards; the progress rewards need them."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from services.dreamer.progress import fresh_model_like, progress_map, token_progress
from services.dreamer.rollout import dream_from_frames
from services.worldmodel.data import FrameDataset
from services.worldmodel.trainer import fit
from shared.dreams import Dreams, read_dreams, write_shards
from shared.models import build_world_model
from shared.move_times import MoveTimes
from shared.pose import ActionScale, PoseRanges
from shared.store import Store
from tests.worldmodel.test_trainer import LIFELONG
from tests.worldmodel.test_training import tiny_cfg

RANGES = PoseRanges(0.0, 360.0, -30.0, 30.0, 1.0, 10.0, True)
SCALE = ActionScale(pan_tilt_deg=4.0)


def drifting(rounds: int = 8, views: int = 5, size: int = 16, seed: int = 0) -> FrameDataset:
    """A texture that drifts 2 px a second by itself, seen from a few pans; every view is grabbed
    twice, one second apart, without moving (a hold): what a hold shows is the drift alone,
    learnable from dt."""
    rng = np.random.default_rng(seed)
    world = rng.integers(0, 255, (size, 4 * size, 3), dtype=np.uint8)
    frames, poses, ids, times = [], [], [], []
    t = 0.0
    for r in range(rounds):
        pan = float(rng.uniform(0, 360))
        for _ in range(views):
            for _hold in range(2):
                x = int(pan / 360 * 4 * size + 2 * t)
                frames.append(np.roll(world, -x, axis=1)[:, :size])
                poses.append((pan, 0.0, 1.0))
                ids.append(r)
                times.append(t)
                t += 1.0
            pan = (pan + float(rng.choice([-20, 20]))) % 360
    return FrameDataset(np.stack(frames), np.array(poses), np.array(ids), np.array(times))


def _map(old, new, data: FrameDataset):
    return progress_map(old, new, data.frames, data.poses, data.round_ids, data.times, RANGES,
                        SCALE)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    data = drifting()
    old = build_world_model(tiny_cfg()).eval()
    new = copy.deepcopy(old)
    fit(new, data, LIFELONG.replace(steps=40, schedule_steps=40))
    return old, new.eval(), data


def test_a_frozen_model_makes_no_progress(models):
    _, new, data = models
    pmap = _map(copy.deepcopy(new), new, data)
    assert np.abs(pmap.move).max() < 1e-6
    assert np.abs(pmap.atlas.values()).max() < 1e-6


def test_training_shows_as_positive_progress_where_the_error_fell(models):
    old, new, data = models
    pmap = _map(old, new, data)
    assert pmap.atlas_source == "holds"
    assert pmap.atlas.mean > 0  # the holds' error fell on average
    seen = pmap.view(data.poses)
    assert (seen > 0).mean() > 0.8
    unseen = pmap.view(np.array([[0.0, 25.0, 10.0]]))  # never looked at: the mean, no more
    assert unseen[0] == pytest.approx(pmap.atlas.mean, rel=0.5)


def test_a_fresh_model_is_the_same_every_time(models):
    _, new, _ = models
    a, b = fresh_model_like(new), fresh_model_like(new)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    before = torch.random.get_rng_state()
    fresh_model_like(new)
    assert torch.equal(before, torch.random.get_rng_state())  # callers' streams untouched


def test_progress_terms_travel_through_dreams_and_shards(models, tmp_path):
    old, new, data = models
    pmap = _map(old, new, data)
    dreams = dream_from_frames(new, data.frames, data.poses, RANGES, n_dreams=6, length=3,
                               scale=SCALE, progress_map=pmap, move_times=MoveTimes.uniform())
    assert dreams.progress_move.shape == (6, 3) and dreams.progress_view.shape == (6, 4)
    assert dreams.measured_move is None  # each map on its own
    np.testing.assert_allclose(dreams.progress_view[:, 0].numpy(),
                               pmap.view(dreams.poses[:, 0].double().numpy()), rtol=1e-5)
    reward = dreams.rewards("progress", view_weight=3.0)
    assert reward.shape == (6, 3) and torch.isfinite(reward).all()
    assert torch.equal(dreams.rewards("progress_view"), dreams.progress_view[:, 1:])
    store = Store(str(tmp_path))
    write_shards(store, "d", dreams, shard_size=4)
    back = read_dreams(store, "d")
    torch.testing.assert_close(back.progress_move, dreams.progress_move)
    torch.testing.assert_close(back.progress_view, dreams.progress_view)


def test_progress_rewards_need_the_terms(models):
    _, new, data = models
    dreams = dream_from_frames(new, data.frames, data.poses, RANGES, n_dreams=2, length=2,
                               scale=SCALE, move_times=MoveTimes.uniform())
    for kind in ("progress", "progress_view"):
        with pytest.raises(ValueError, match="needs the progress map"):
            dreams.rewards(kind)
    with pytest.raises(ValueError, match="progress_move and progress_view come together"):
        Dreams(**{**{f.name: getattr(dreams, f.name) for f in dataclasses.fields(dreams)},
                  "progress_move": torch.zeros(2, 2)})


def _measured(token_errors, copy_errors) -> dict:
    return {"token_errors": np.asarray(token_errors, dtype=np.float64),
            "copy_errors": np.asarray(copy_errors, dtype=np.float64)}


def test_progress_is_measured_in_the_new_models_scale():
    """A model whose space only spread out (every error and the copy baseline doubled) has made
    no progress, though its raw error rose; one whose error halved against an unchanged baseline
    has. The raw difference reads the first as a loss of 0.1 per token."""
    new = _measured([[0.2, 0.2], [0.4, 0.4]], [1.0, 2.0])
    spread = _measured([[0.1, 0.1], [0.2, 0.2]], [0.5, 1.0])   # the old model, half the scale
    for rescale in ("global", "transition"):
        assert np.allclose(token_progress(spread, new, rescale), 0.0)
    assert np.allclose(token_progress(spread, new, "none"), [[-0.1, -0.1], [-0.2, -0.2]])
    better = _measured([[0.4, 0.2], [0.8, 0.8]], [1.0, 2.0])   # the same scale, twice the error
    assert np.allclose(token_progress(better, new, "transition"), [[0.2, 0.0], [0.4, 0.4]])
    with pytest.raises(ValueError, match="rescale"):
        token_progress(better, new, "ratio")


def test_a_transition_that_hardly_changed_is_not_rescaled_by_its_own_copy_error():
    """A near-still transition's copy error is no scale: it is floored at a fraction of the
    mean, so that its progress stays finite and of the size of its errors."""
    new = _measured([[0.01], [0.3]], [1e-9, 1.0])
    old = _measured([[0.02], [0.3]], [1e-12, 1.0])
    drop = token_progress(old, new, "transition")
    assert np.isfinite(drop).all() and abs(drop[0, 0]) < 0.05
