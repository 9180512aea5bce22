"""The held-out evaluation on a tiny model and tiny simulated sweeps: every figure is there, dts
come from the capture times, and the copy baseline and a broken model score what they must."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.worldmodel_sim import BENCH_SCALE, simulate_sweep
from services.worldmodel.evaluate import (
    encode_dataset,
    evaluate,
    kind_figures,
    pixel_probe_figures,
    rollout_errors,
    transitions,
)
from services.worldmodel.probes import action_recognition, pixel_tokens
from shared.models import build_world_model
from shared.models.world_model import normalise_poses
from tests.support.tiny_models import one_thread, tiny_config  # noqa: F401  (fixture)

SIZE = 32




@pytest.fixture(scope="module")
def sweeps(world):
    held = simulate_sweep(world, 3, 6, seed=1, size=SIZE, t0=1000.0)
    fit = simulate_sweep(world, 12, 2, seed=2, size=SIZE, t0=2000.0)
    test = simulate_sweep(world, 10, 2, seed=3, size=SIZE, t0=3000.0)
    return held, fit, test


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_world_model(tiny_config(img_size=SIZE)).eval()
    m.surprise.mark_ready()
    return m


def halves(n: int) -> dict[str, np.ndarray]:
    first = (np.arange(n) < n // 2).astype(np.float64)
    return {"all": np.ones(n), "first": first, "second": 1.0 - first, "none": np.zeros(n)}


def test_evaluate_reports_every_figure(model, sweeps):
    held, fit, test = sweeps
    out = evaluate(model, held.data, probe_fit=fit.data, probe_test=test.data,
                   frame_kinds=halves(len(held.data)), action_scale=BENCH_SCALE)
    assert out["held_out_transitions"] == 18
    assert math.isfinite(out["one_step_ratio"]) and out["one_step_ratio"] > 0
    assert set(out["rollout_ratio"]) == {str(h) for h in range(1, 7)}
    assert out["rollout_ratio"]["1"] == pytest.approx(out["one_step_ratio"])
    assert out["ratio_by_kind"]["all"] == pytest.approx(out["one_step_ratio"], rel=1e-5)
    assert out["ratio_by_kind"]["none"] is None
    assert out["kind_weight"]["all"] == 18
    assert 0.0 <= out["action"]["top1"] <= 1.0 and out["action"]["pairs"] == 18
    assert set(out["collapse_r2"]) >= {"tilt", "log_zoom"}
    assert 0.0 <= out["place"]["median_pan_err_deg"] <= 180.0
    assert out["inverse"]["pairs"] == {"fit": 24, "score": 20}
    assert set(out["inverse"]["r2_per_output"]) == {"d_pan", "d_tilt", "d_log_zoom"}
    assert set(out["surprise_spearman"]) == {"pred_error"}
    assert "probe_r2" not in out  # no absolute-pan read-out: pan is place recognition's


class CopyModel:
    """Predicts "nothing moves": the copy baseline itself."""

    def __init__(self, model):
        self.model = model

    def eval(self):
        return self

    def encode_state(self, frames):
        return self.model.encode_state(frames)

    def predict(self, state, pose_from, pose_to, ranges=None, *, dt):
        return state.clone(), torch.zeros(len(state))


class ZeroModel(CopyModel):
    """A broken model: predicts an all-zero state whatever it is asked."""

    def predict(self, state, pose_from, pose_to, ranges=None, *, dt):
        return torch.zeros_like(state), torch.zeros(len(state))


def test_kind_figures_score_the_copy_baseline_at_one_and_a_broken_model_badly(model, sweeps):
    held = sweeps[0].data
    kinds = halves(len(held))
    copy = kind_figures(CopyModel(model), held, kinds)
    assert copy["one_step_ratio"] == pytest.approx(1.0)
    assert all(v == pytest.approx(1.0) for k, v in copy["ratio_by_kind"].items() if k != "none")
    broken = kind_figures(ZeroModel(model), held, kinds)
    assert broken["one_step_ratio"] > 1.5
    assert all(v > 1.5 for k, v in broken["ratio_by_kind"].items() if k != "none"), broken


class HalfZeroModel(CopyModel):
    """Copies the first half of the cells and zeroes the rest: wrong only where it zeroes."""

    def predict(self, state, pose_from, pose_to, ranges=None, *, dt):
        pred = state.clone()
        pred[:, state.shape[1] // 2:] = 0.0
        return pred, torch.zeros(len(state))


def test_per_cell_kind_fractions_score_only_the_cells_that_show_the_kind(model, sweeps):
    held = sweeps[0].data
    cells = (model.cfg.encoder.img_size // model.cfg.encoder.patch_size) ** 2
    first = np.zeros((len(held), cells))
    first[:, :cells // 2] = 1.0
    kinds = {"first": first, "second": 1.0 - first}
    out = kind_figures(HalfZeroModel(model), held, kinds)
    assert out["ratio_by_kind"]["first"] == pytest.approx(1.0)
    assert out["ratio_by_kind"]["second"] > 1.5
    assert out["kind_weight"]["first"] == pytest.approx(len(transitions(held)[0]) * cells / 2)
    # Whole views mix the two halves of the cells: no stratum of views scores as the copy.
    views = kind_figures(HalfZeroModel(model), held, halves(len(held)))
    assert views["ratio_by_kind"]["first"] > 1.05 and views["ratio_by_kind"]["second"] > 1.05
    with pytest.raises(ValueError, match="per-cell"):
        kind_figures(model, held, {"bad": np.ones((len(held), cells + 1))})


class DtRecorder(CopyModel):
    def __init__(self, model):
        super().__init__(model)
        self.dts: list[np.ndarray] = []

    def predict(self, state, pose_from, pose_to, ranges=None, *, dt):
        self.dts.append(np.asarray(dt, dtype=np.float64))
        return state.clone(), torch.zeros(len(state))


def test_rollouts_are_conditioned_on_capture_time_differences(model, sweeps):
    held = sweeps[0].data
    rec = DtRecorder(model)
    states = encode_dataset(model, held)
    poses = normalise_poses(np.asarray(held.poses), held.ranges)
    rollout_errors(rec, states, poses, held.times, held.rounds(), max_horizon=7)
    src, dst = transitions(held)
    np.testing.assert_allclose(rec.dts[0], held.times[dst] - held.times[src])
    assert (rec.dts[0] > 0.5).all()  # every move costs the simulated camera its settle time
    # Rounds of 7 frames: horizons 1..6, a start dropped once its round ends (h = 6: one per round).
    assert [len(d) for d in rec.dts] == [18, 15, 12, 9, 6, 3]
    first = held.rounds()[0]
    np.testing.assert_allclose(rec.dts[-1][0], held.times[first[6]] - held.times[first[5]])


def test_pixel_tokens_lay_the_view_out_like_a_state_and_feed_the_same_probes(sweeps):
    frame = np.zeros((1, 16, 16, 3), np.uint8)
    frame[:, :, 8:] = 255  # right half white
    tokens = pixel_tokens(frame, grid=4)
    assert tokens.shape == (1, 16, 3)
    np.testing.assert_allclose(tokens[0, :, 0].reshape(4, 4).numpy(), [[0, 0, 1, 1]] * 4)
    _, fit, test = sweeps
    out = pixel_probe_figures(fit.data, test.data, grid=4)
    assert set(out) == {"collapse_r2", "place", "inverse", "probe_frames"}
    assert out["inverse"]["pairs"] == {"fit": 24, "score": 20}


def test_action_recognition_of_an_untrained_model_is_near_chance_without_the_warp(model, sweeps):
    """An untrained predictor without the geometric warp predicts about the source for every
    action, so the probe cannot pick the move: top-1 stays near what guessing scores. (With the
    warp the geometry alone already separates many moves; the bench reports that model's figure
    as `action_top1_at_init`, the level a trained model is read against.)"""
    held, _, _ = sweeps
    assert not model.cfg.predictor.warp
    src, dst = transitions(held.data)
    out = action_recognition(model, encode_dataset(model, held.data), held.data.poses,
                             held.data.times[dst] - held.data.times[src], src, dst,
                             held.data.ranges, BENCH_SCALE)
    assert out["top1"] <= max(0.25, 3 * out["chance_with_ties"])
