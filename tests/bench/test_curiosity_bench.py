"""bench/curiosity.py end to end on a tiny budget: the JSON holds what issue 20 asks for, every arm
made the same camera steps and optimiser steps, and bad arguments are refused."""

from __future__ import annotations

import json

import pytest

from bench import curiosity

TINY = ["--seeds", "1", "--cycles", "3", "--sweep-rounds", "4", "--nav-rounds", "2",
        "--moves", "8", "--held-rounds", "6", "--held-moves", "3", "--wm-steps", "2",
        "--dreams", "16", "--dream-batch", "16", "--agent-updates", "20", "--threads", "1"]


PARTIALS: list[dict] = []  # what the run left beside its output after each cycle but the last


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("curiosity") / "curiosity.json"
    write_partial = curiosity.write_partial

    def keep(path, seed_so_far):
        write_partial(path, seed_so_far)
        PARTIALS.append(json.loads(curiosity.partial_path(path).read_text()))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(curiosity, "write_partial", keep)
        curiosity.main(["--out", str(out), *TINY, "--rewards", "progress,measured_balanced"])
    assert not curiosity.partial_path(str(out)).exists()  # removed once the run is whole
    return json.loads(out.read_text())


def test_a_run_cut_short_keeps_its_figures(result):
    assert result["seeds_done"] == [0]
    assert len(PARTIALS) == 1  # after cycle 2 of 3
    partial = PARTIALS[0]
    assert partial["partial"] is True and partial["seed"] == 0
    assert all(len(per_cycle) == 3 for per_cycle in partial["curves"]["arms"].values())
    assert set(partial["rewards"]) == {"progress", "measured_balanced"}


def test_output_has_the_issue_keys(result):
    assert set(result["learning_gain"]) == {"learnable", "overall", "static"}
    assert {"noise", "learnable", "static", "periodic", "movers", "detail"} <= set(
        result["dwell_ratio"])
    assert set(result["rewards"]) == {"progress", "measured_balanced"}
    assert result["primary_reward"] == "progress"
    assert len(result["per_seed"]) == 1


def test_curves_cover_every_cycle_and_arm(result):
    curves = result["curves"]
    assert curves["cycle"] == [0, 1, 2, 3]  # the untrained model, the sweep's, two agent cycles
    assert set(curves["arms"]) == {"progress", "measured_balanced", "random"}
    for arm in curves["arms"].values():
        assert all(len(values) == 4 for values in arm.values())
        assert all(v is None or v > 0 for v in arm["overall"])
    # before the arms split, every arm has the same model
    firsts = {arm["overall"][1] for arm in curves["arms"].values()}
    assert len(firsts) == 1


def test_each_cycle_scores_the_kinds_own_cells_too(result):
    seed = result["per_seed"][0]
    logs = [c for r in seed["rewards"].values() for c in r["cycles"]] + seed["random_arm_cycles"]
    assert logs and all(set(c["ratio_cells"]) == {"learnable", "noise", "periodic", "movers", "detail",
                                                  "static"} for c in logs)
    assert all(v is None or v > 0 for c in logs for v in c["ratio_cells"].values())
    gains = seed["rewards"]["progress"]["learning_gain_cells"]
    assert gains["static"] is not None and gains["static"] > 0
    assert result["rewards"]["progress"]["learning_gain_cells_per_seed"]["static"] == [gains["static"]]


def test_arms_get_the_same_steps(result):
    seed = result["per_seed"][0]
    moves = {name: d["moves"] for name, d in seed["dwell"].items()}
    assert len(set(moves.values())) == 1 and moves["random"] == 2 * 2 * 8  # 2 cycles x 2 rounds
    trained = [c["train"]["steps"] for r in seed["rewards"].values() for c in r["cycles"]]
    trained += [c["train"]["steps"] for c in seed["random_arm_cycles"]]
    assert trained == [2] * len(trained)
    for r in seed["rewards"].values():
        assert all("progress_map" in c["dreams"] for c in r["cycles"])


def test_bad_rewards_are_refused(tmp_path, capsys):
    for bad in ("nonsense", "progress:x", "progress,progress", "random"):
        with pytest.raises(SystemExit):
            curiosity.main(["--out", str(tmp_path / "x.json"), *TINY, "--rewards", bad])
    assert "--rewards" in capsys.readouterr().err


def test_training_runs_on_the_bench_threads():
    """The `cpu` preset trains on every core; the bench's seeds run side by side, each on its
    own `--threads`."""
    import torch

    from bench.curiosity_arms import Budget

    budget = Budget(wm_steps=3, schedule_steps=9, max_rounds=5, dreams=1, dream_length=1,
                    dream_batch=1, error_map_transitions=1, agent_updates=1, gamma=0.9,
                    view_weight=1.0, epsilon=0.0)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert budget.train_config(0).threads == 1
    finally:
        torch.set_num_threads(before)
