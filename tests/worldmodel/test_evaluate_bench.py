"""bench/worldmodel.py's pieces on a tiny world and model: sweeps carry the simulated camera's
times and the actions that reached each frame, and the cycles resume one TrainState."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from bench.worldmodel import (
    HoldSet,
    cycle_sweep,
    headline,
    kind_entry,
    parse_args,
    run_configs,
    run_cycles,
)
from bench.worldmodel_sim import (
    BENCH_RANGES,
    BENCH_SCALE,
    NO_ACTION,
    ROUND_GAP_S,
    cell_kinds,
    concat_sweeps,
    frame_kinds,
    override_config,
    recent_rounds,
    simulate_sweep,
    zone_starts,
)
from services.camera.sim.camera import SimCamera, SimCameraConfig
from services.worldmodel.config import TrainConfig
from services.worldmodel.evaluate import evaluate, kind_figures
from shared.models import build_world_model
from shared.models.config import ConfigError
from shared.pose import NOOP, Pose, apply_action
from shared.scene import LEARNABLE_KINDS, ZONE_KINDS
from tests.support.tiny_models import one_thread, tiny_config  # noqa: F401  (fixture)

SIZE = 32




def test_a_sweep_records_actions_and_the_cameras_settle_times(world):
    sweep = simulate_sweep(world, rounds=3, moves=5, seed=7, size=SIZE, t0=50.0)
    data, actions = sweep.data, sweep.actions
    assert len(data) == 18 and data.frames.shape == (18, SIZE, SIZE, 3)
    camera = SimCamera(world, SimCameraConfig())
    for r in data.rounds():
        assert actions[r[0]] == NO_ACTION and (actions[r[1:]] >= 0).all()
        for i, j in itertools.pairwise(r):
            a, b = Pose(*data.poses[i]), Pose(*data.poses[j])
            assert apply_action(a, int(actions[j]), BENCH_RANGES, BENCH_SCALE) == b
            want = camera.settle_time(a, b) + camera.config.snapshot_s
            assert data.times[j] - data.times[i] == pytest.approx(want)
    firsts = [r[0] for r in data.rounds()]
    lasts = [r[-1] for r in data.rounds()]
    assert data.times[firsts[0]] > 50.0  # the move from the home pose takes time too
    assert all(data.times[f] - data.times[e] > ROUND_GAP_S for e, f in zip(lasts[:-1], firsts[1:],
                                                                          strict=True))


def test_sweeps_are_reproducible_per_seed(world):
    a = simulate_sweep(world, 2, 3, seed=5, size=SIZE)
    b = simulate_sweep(world, 2, 3, seed=5, size=SIZE)
    c = simulate_sweep(world, 2, 3, seed=6, size=SIZE)
    assert np.array_equal(a.data.frames, b.data.frames) and np.array_equal(a.actions, b.actions)
    assert not np.array_equal(a.data.poses, c.data.poses)


def test_frame_kinds_follow_the_simulator(world):
    data = simulate_sweep(world, 2, 3, seed=5, size=SIZE).data
    kinds = frame_kinds(world, data)
    assert tuple(kinds) == ZONE_KINDS
    np.testing.assert_allclose(sum(kinds.values()), np.ones(len(data)), atol=1e-6)
    i = 3
    assert kinds["static"][i] == world.kind_fractions(Pose(*data.poses[i]))["static"]


def test_cell_kinds_split_each_view_into_the_encoders_cells(world):
    pose = world.zone_poses(zoom=4.0)["dial"]
    data = simulate_sweep(world, 0, 2, seed=5, size=SIZE, starts=[pose]).data
    cells = cell_kinds(world, data, grid=4)
    views = frame_kinds(world, data)
    assert cells["periodic"].shape == (len(data), 16)
    np.testing.assert_allclose(sum(cells.values()), np.ones((len(data), 16)), atol=1e-6)
    for kind in ZONE_KINDS:  # a view's fraction is the mean of its cells'
        np.testing.assert_allclose(cells[kind].mean(axis=1), views[kind], atol=1e-6)
    assert cells["periodic"][0].max() > cells["periodic"][0].min()  # the dial fills some cells
    with pytest.raises(ValueError, match="multiple"):
        cell_kinds(world, data, grid=5, px=64)
    twelve = cell_kinds(world, data, grid=12)  # a grid that does not divide 64: a 72 px mask
    assert twelve["periodic"].shape == (len(data), 144)
    np.testing.assert_allclose(sum(twelve.values()), np.ones((len(data), 144)), atol=1e-6)


def test_cycles_resume_one_state_and_score_the_held_out_set_after_each(world):
    torch.manual_seed(0)
    model = build_world_model(tiny_config(img_size=SIZE))
    cfg = TrainConfig(steps=2, schedule_steps=4, window_len=3, windows_per_batch=2,
                      train_queries=None, rollout_chains=1, threads=1)
    held = simulate_sweep(world, 2, 4, seed=9, size=SIZE, t0=9000.0)
    kinds = {"all": np.ones(len(held.data))}
    cells = {"all": np.ones((len(held.data), (SIZE // 8) ** 2))}
    state, learn, fits = run_cycles(model, world, cfg, held, kinds, cells=cells, cycles=2, rounds=2,
                                    moves=4, seed=0)
    assert state is not None and state.step == 4
    assert [e["cycle"] for e in learn] == [0, 1, 2]
    assert [e["lifetime_steps"] for e in learn] == [0, 2, 4]
    assert [f["steps"] for f in fits] == [2, 2]
    assert learn[2]["ratio_by_kind"]["all"] == pytest.approx(learn[2]["one_step_ratio"], rel=1e-5)
    assert learn[2]["ratio_by_kind_cells"]["all"] == pytest.approx(learn[2]["one_step_ratio"], rel=1e-5)
    fit_set = simulate_sweep(world, 6, 2, seed=10, size=SIZE, t0=20_000.0)
    test_set = simulate_sweep(world, 6, 2, seed=11, size=SIZE, t0=30_000.0)
    metrics = evaluate(model, held.data, probe_fit=fit_set.data, probe_test=test_set.data,
                       action_scale=BENCH_SCALE)
    out = headline(metrics, kind_figures(model, held.data, kinds), learn)
    assert set(out) == {"one_step_ratio", "rollout_ratio", "ratio_by_kind", "ratio_by_kind_cells",
                        "action_top1",
                        "inverse_r2", "collapse_r2", "place_pan_err_deg", "learnability",
                        "surprise_spearman"}
    assert set(out["rollout_ratio"]) == {"1", "5", "10"} and out["rollout_ratio"]["10"] is None
    assert set(out["collapse_r2"]) == {"tilt", "log_zoom"}


def test_the_kind_set_starts_near_every_zone_and_joins_the_held_out_rounds(world):
    starts = zone_starts(world, per_zone=2, seed=1)
    assert len(starts) == 2 * len(world.zone_poses())
    zones = simulate_sweep(world, 0, 2, seed=1, size=SIZE, t0=500.0, starts=starts)
    assert len(zones.data) == 3 * len(starts)
    kinds = frame_kinds(world, zones.data)
    firsts = [r[0] for r in zones.data.rounds()]
    for kind in ("noise", "periodic", "movers", "detail"):
        assert kinds[kind][firsts].max() > 0.1, kind  # some round starts on a view of each kind
    held = simulate_sweep(world, 2, 3, seed=2, size=SIZE, t0=100.0)
    both = concat_sweeps(held, zones)
    assert len(both.data.rounds()) == 2 + len(starts)
    assert np.array_equal(both.data.frames[len(held.data):], zones.data.frames)
    assert np.array_equal(both.actions[:len(held.data)], held.actions)


def test_zone_starts_can_keep_to_some_kinds(world):
    kinds = world.zone_kinds()
    periodic = [n for n, k in kinds.items() if k == "periodic"]
    starts = zone_starts(world, per_zone=3, seed=2, kinds=("periodic",))
    assert len(starts) == 3 * len(periodic)
    assert all(world.kind_fractions(p)["periodic"] > 0 for p in starts)


def test_a_cycle_sweep_can_start_rounds_near_the_learnable_zones(world):
    plain = cycle_sweep(world, 4, 2, seed=0, cycle=1, size=SIZE)
    same = simulate_sweep(world, 4, 2, seed=1_000_001, size=SIZE, t0=0.0)
    assert np.array_equal(plain.data.poses, same.data.poses)  # share 0: the random camera
    near = cycle_sweep(world, 4, 2, seed=0, cycle=2, size=SIZE, zone_share=1.0)
    firsts = [r[0] for r in near.data.rounds()]
    shown = frame_kinds(world, near.data)
    assert len(firsts) == 4 and near.data.times.min() >= 4000.0  # cycle 2 comes later
    for i in firsts:
        assert sum(shown[k][i] for k in LEARNABLE_KINDS) > 0 and shown["noise"][i] < 0.5
    half = cycle_sweep(world, 4, 2, seed=0, cycle=1, size=SIZE, zone_share=0.5)
    learnable = [sum(frame_kinds(world, half.data)[k][i] for k in LEARNABLE_KINDS)
                 for i in (r[0] for r in half.data.rounds())]
    assert sum(v > 0 for v in learnable) >= 2


def test_each_cycle_trains_on_the_newest_rounds_of_every_sweep_so_far(world):
    """As the training phase loads the newest `max_rounds` rounds, not only the last sweep."""
    a = simulate_sweep(world, 2, 2, seed=1, size=SIZE, t0=0.0)
    b = simulate_sweep(world, 2, 2, seed=2, size=SIZE, t0=100.0)
    both = concat_sweeps(a, b)
    assert len(recent_rounds(both, 10).data) == 12
    newest = recent_rounds(both, 3)
    assert len(newest.data) == 9 and len(newest.actions) == 9
    assert newest.data.times.tolist() == both.data.times[3:].tolist()


def test_config_overrides_set_typed_fields_and_refuse_bad_ones():
    base = tiny_config()
    cfg = override_config(base, ["encoder.img_size=48", "predictor.depth=3", "predictor.warp=false",
                                 "predictor.time_scale_s=2.5"])
    assert (cfg.encoder.img_size, cfg.predictor.depth) == (48, 3)
    assert cfg.predictor.warp is False and cfg.predictor.time_scale_s == 2.5
    assert override_config(base, []) == base
    for bad in ("encoder.img_size", "encoder.nope=1", "decoder.dim=4", "predictor.warp=maybe",
                "predictor.depth=deep", "name.x=1"):
        with pytest.raises(ValueError):
            override_config(base, [bad])
    with pytest.raises(ConfigError, match="multiple of patch_size"):
        override_config(base, [f"encoder.img_size={base.encoder.patch_size * 3 + 1}"])


def test_the_bench_command_line_applies_overrides_and_rejects_bad_ones(capsys):
    args = parse_args(["--out", "x.json", "--wm-set", "encoder.img_size=96",
                       "--wm-set", "predictor.depth=6"])
    wm, _ = run_configs(args, 60.0)
    assert (wm.encoder.img_size, wm.encoder.grid, wm.predictor.depth) == (96, 12, 6)
    with pytest.raises(SystemExit):
        parse_args(["--out", "x.json", "--wm-set", "encoder.img_size=97"])
    assert "--wm-set" in capsys.readouterr().err


def test_a_held_sweep_keeps_the_pose_while_the_clock_runs(world):
    sweep = simulate_sweep(world, 2, 3, seed=4, size=SIZE, t0=100.0, hold_share=1.0)
    data, actions = sweep.data, sweep.actions
    camera = SimCamera(world, SimCameraConfig())
    for r in data.rounds():
        assert (actions[r[1:]] == NOOP).all()
        assert (data.poses[r] == data.poses[r[0]]).all()
        steps = np.diff(data.times[r])
        a = Pose(*data.poses[r[0]])
        np.testing.assert_allclose(steps, camera.settle_time(a, a) + camera.config.snapshot_s)


def test_held_transitions_show_the_noise_changing_and_the_detail_not(world):
    """The hold figures on an untrained tiny model: what the target states see change in time
    with the camera still: the screen of static changes at every instant, the board never."""
    torch.manual_seed(0)
    model = build_world_model(tiny_config(img_size=SIZE))
    held = simulate_sweep(world, 2, 3, seed=9, size=SIZE, t0=9000.0)
    grid = SIZE // 8
    starts = zone_starts(world, 2, seed=3, kinds=("noise", "detail"))
    still = simulate_sweep(world, 0, 3, seed=3, size=SIZE, t0=500.0, starts=starts, hold_share=1.0)
    entry = kind_entry(model, held, frame_kinds(world, held.data), cell_kinds(world, held.data, grid),
                       HoldSet(still, cell_kinds(world, still.data, grid)))
    change = entry["hold_change_by_kind_cells"]
    assert set(change) == set(ZONE_KINDS) == set(entry["hold_ratio_by_kind_cells"])
    assert change["noise"] > 0.1 and change["detail"] < 0.01 * change["noise"]


def test_kind_figures_report_the_copy_baselines_error_per_kind(world):
    torch.manual_seed(0)
    model = build_world_model(tiny_config(img_size=SIZE))
    held = simulate_sweep(world, 2, 3, seed=9, size=SIZE, t0=9000.0)
    ones = np.ones(len(held.data))
    fig = kind_figures(model, held.data, {"all": ones, "none": 0 * ones})
    assert fig["copy_error_by_kind"]["none"] is None
    copy = evaluate(model, held.data)["one_step_copy_error"]
    assert fig["copy_error_by_kind"]["all"] == pytest.approx(copy, rel=1e-5)
    assert fig["copy_error"] == pytest.approx(copy, rel=1e-5)


def test_a_hold_share_makes_that_share_of_moves_the_noop(world):
    plain = simulate_sweep(world, 4, 10, seed=2, size=SIZE)
    assert np.array_equal(plain.actions, simulate_sweep(world, 4, 10, seed=2, size=SIZE,
                                                        hold_share=0.0).actions)
    some = simulate_sweep(world, 4, 10, seed=2, size=SIZE, hold_share=0.5).actions
    moves = some[some != NO_ACTION]
    assert 0.3 < (moves == NOOP).mean() < 0.8
    with pytest.raises(ValueError, match="hold_share"):
        simulate_sweep(world, 1, 1, seed=2, size=SIZE, hold_share=1.5)
    with pytest.raises(SystemExit):
        parse_args(["--out", "x.json", "--hold-share", "-0.1"])
