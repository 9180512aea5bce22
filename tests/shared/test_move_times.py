"""Move times measured from recorded rounds: per-action medians, hold frames as the no-op, the
fallbacks, the JSON form and clear errors for values that cannot be seconds."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.move_times import (
    DEFAULT_MOVE_S,
    MoveTimes,
    MoveTimesError,
    measure_move_times,
    move_times_from_steps,
    node_move_times,
)
from shared.pose import N_ACTIONS, NOOP
from shared.schemas import FrameRecord, PoseModel
from shared.store import Store, manifest_path

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def round_of(steps: list[tuple[int | None, float, bool]], *, round_id: str = "r", node: str = "n",
             sim: bool = True) -> list[FrameRecord]:
    """Records of one round from (action, seconds since T0, hold) per frame; `sim` puts the
    seconds on the simulator's clock (captured_at then says something else), else on
    captured_at alone."""
    out = []
    for i, (action, t, hold) in enumerate(steps):
        out.append(FrameRecord(
            frame_id=f"{round_id}-{i:03d}", path=f"frames/{node}/{round_id}/{i}.jpg",
            pose=PoseModel(pan=float(i), tilt=0.0, zoom=1.0),
            captured_at=T0 + timedelta(seconds=1000.0 * i if sim else t), node=node, camera="c",
            source="sweep", round_id=round_id, step=i, action=action,
            sim_time=t if sim else None, extra={"hold": True} if hold else {}))
    return out


def sweep_round(t0: float, moves: list[tuple[int, float]], hold_s: float | None,
                **kw) -> list[FrameRecord]:
    """A sweep's round: an absolute start, then per (action, seconds) a move, each followed by its
    hold frame `hold_s` later when given."""
    steps: list[tuple[int | None, float, bool]] = [(None, t0, False)]
    t = t0
    if hold_s is not None:
        t += hold_s
        steps.append((NOOP, t, True))
    for action, seconds in moves:
        t += seconds
        steps.append((action, t, False))
        if hold_s is not None:
            t += hold_s
            steps.append((NOOP, t, True))
    return round_of(steps, **kw)


def test_per_action_medians_with_hold_frames_as_the_noop():
    rounds = [sweep_round(0.0, [(1, 0.6), (1, 0.7), (17, 2.0), (1, 0.65)], 0.54, round_id="a"),
              sweep_round(500.0, [(17, 2.2), (17, 2.1), (3, 0.9)], 0.5, round_id="b", sim=False)]
    mt = measure_move_times(rounds)
    assert mt.seconds[1] == pytest.approx(0.65) and mt.samples[1] == 3
    assert mt.seconds[17] == pytest.approx(2.1) and mt.samples[17] == 3
    # hold frames: 5 + 4 gaps of 0.54 and 0.5 seconds
    assert mt.samples[NOOP] == 9 and mt.noop_s == pytest.approx(0.54)
    # fewer than min_samples: the median over every measured move (all 16 gaps)
    gaps = [0.6, 0.7, 2.0, 0.65, 2.2, 2.1, 0.9] + [0.54] * 5 + [0.5] * 4
    pooled = sorted(gaps)[7:9]
    assert mt.samples[3] == 1 and mt.seconds[3] == pytest.approx(sum(pooled) / 2)
    assert mt.seconds[5] == mt.seconds[3] and mt.samples[5] == 0
    # no absolute move after a first frame: the jump falls back too
    assert mt.jump_samples == 0 and mt.jump_s == mt.seconds[3]
    assert measure_move_times(rounds, min_samples=1).seconds[3] == pytest.approx(0.9)


def test_absolute_moves_inside_a_round_give_the_jump_time():
    steps = [(None, 0.0, False), (None, 3.0, False), (None, 7.0, False), (None, 10.0, False),
             (2, 10.5, False)]
    mt = measure_move_times([round_of(steps)], min_samples=3)
    assert mt.jump_samples == 3 and mt.jump_s == 3.0
    # pooled over the actions' moves alone (a jump's travel is no estimate of a step's): 0.5
    assert mt.samples[2] == 1 and mt.seconds[2] == 0.5 and mt.seconds[7] == 0.5


def test_nothing_measured_gives_the_default():
    one_frame = [round_of([(None, 5.0, False)])]
    assert measure_move_times(one_frame) == MoveTimes.uniform(DEFAULT_MOVE_S)
    assert measure_move_times([], default_s=0.8) == MoveTimes.uniform(0.8)
    assert MoveTimes.uniform(0.8).samples == (0,) * N_ACTIONS


def test_capture_times_going_backwards_are_refused():
    rounds = [round_of([(None, 5.0, False), (3, 4.0, False)], round_id="x")]
    with pytest.raises(MoveTimesError, match=r"frame 1 is -1.0 s after.*in order"):
        measure_move_times(rounds)
    with pytest.raises(MoveTimesError, match="outside"):
        move_times_from_steps([[(None, 0.0), (21, 1.0)]])
    with pytest.raises(MoveTimesError, match="min_samples"):
        move_times_from_steps([], min_samples=0)
    with pytest.raises(MoveTimesError, match="default_s"):
        move_times_from_steps([], default_s=float("nan"))


def test_json_round_trip_and_bad_values():
    mt = measure_move_times([sweep_round(0.0, [(a % N_ACTIONS, 0.5 + 0.01 * a) for a in range(60)],
                                         0.54)])
    back = MoveTimes.from_dict(json.loads(json.dumps(mt.to_dict())))
    assert back == mt and isinstance(back.seconds, tuple)
    assert mt.of([[0, 1], [20, 3]]).dtype.name == "float32"
    assert mt.of([[0, 1]]).tolist()[0] == pytest.approx([mt.seconds[0], mt.seconds[1]])
    assert mt.summary()["measured_gaps"] == 121  # the start's hold, then a move and its hold
    d = mt.to_dict()
    for bad, match in ((dict(d, jump_s=float("inf")), "jump_s must be finite"),
                       (dict(d, seconds=[-0.1, *d["seconds"][1:]]), r"seconds\[0\] must be finite"),
                       (dict(d, seconds=d["seconds"][:5]), "need 21 seconds"),
                       (dict(d, samples=[1.5] * N_ACTIONS), r"samples\[0\] must be a count"),
                       (dict(d, seconds=["x"] * N_ACTIONS), "must be a number"),
                       ({k: v for k, v in d.items() if k != "jump_samples"}, "exactly the fields")):
        with pytest.raises(MoveTimesError, match=match):
            MoveTimes.from_dict(bad)


def test_node_move_times_reads_this_nodes_recent_rounds(tmp_path):
    store = Store(str(tmp_path))
    mine = sweep_round(0.0, [(4, 0.8)] * 3, 0.5, round_id="m1", node="n0")
    newer = sweep_round(100.0, [(4, 1.2)] * 3, 0.5, round_id="m2", node="n0")
    for r in (mine, newer):
        r = [rec.model_copy(update={"captured_at": T0 + timedelta(seconds=rec.sim_time or 0)})
             for rec in r]
        store.write_manifest(manifest_path("n0", r[0].round_id), r)
    other = sweep_round(0.0, [(4, 9.0)] * 5, 9.0, round_id="o1", node="n1")
    store.write_manifest(manifest_path("n1", "o1"), other)
    assert node_move_times(store, "n0", max_rounds=10).seconds[4] == pytest.approx(1.0)
    assert node_move_times(store, "n0", max_rounds=1).seconds[4] == pytest.approx(1.2)  # newest
    assert node_move_times(store, "n0", max_rounds=10).samples[4] == 6
    assert node_move_times(store, "n0", max_rounds=10).noop_s == pytest.approx(0.5)
    assert node_move_times(store, "nobody", max_rounds=10) == MoveTimes.uniform(DEFAULT_MOVE_S)
