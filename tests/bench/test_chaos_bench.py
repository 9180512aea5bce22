"""The chaos benchmark end to end on its tiny config: a real node (real workers, Redis, camera
service, camera emulator over HTTP) hit by a few faults of different kinds; the JSON has its shape
and every check passes."""

from __future__ import annotations

import json
import time

import pytest

from bench.chaos import main
from bench.chaos_faults import KINDS, schedule

pytestmark = pytest.mark.integration

KEYS = ("faults", "cycles", "cycles_stuck", "corrupt_versions", "frames_lost", "dead_holders",
        "fault_to_end_s", "per_fault", "config", "machine")


def test_the_schedule_is_seeded_and_draws_every_kind_in_turn() -> None:
    plan = schedule(len(KINDS) * 2, seed=7)
    assert plan == schedule(len(KINDS) * 2, seed=7)
    assert sorted(plan[:len(KINDS)]) == sorted(KINDS) == sorted(plan[len(KINDS):])
    assert schedule(3, seed=7) == plan[:3]


def test_three_faults_leave_nothing_stuck_corrupt_lost_or_held(tmp_path) -> None:
    out = tmp_path / "chaos.json"
    t0 = time.monotonic()
    # one kill alone, one by group, one Redis restart: the three kinds that broke cycles before
    code = main(["--out", str(out), "--kills", "3", "--interval-s", "1.5", "--seed", "1",
                 "--kinds", "kill_process,kill_group,redis_restart", "--data-dir", str(tmp_path / "data")])
    elapsed = time.monotonic() - t0
    result = json.loads(out.read_text())
    assert all(key in result for key in KEYS), sorted(result)
    assert result["faults"] == 3 and len(result["per_fault"]) == 3
    assert {f["kind"] for f in result["per_fault"]} == {"kill_process", "kill_group", "redis_restart"}
    assert all({"kind", "target", "at", "cycle", "fault_to_end_s"} <= set(f) for f in result["per_fault"])
    assert set(result["fault_to_end_s"]) >= {"p50", "max"}
    assert result["cycles"] >= 1
    failed = {k: result[k] for k in ("cycles_stuck", "corrupt_versions", "frames_lost", "dead_holders",
                                     "orphan_holders", "cycles_unexplained") if result[k]}
    assert not failed, (failed, result.get("stuck"), result.get("holders"), result.get("lost"))
    assert code == 0, result["failed_checks"]
    assert elapsed < 90, f"the bench took {elapsed:.0f} s"
