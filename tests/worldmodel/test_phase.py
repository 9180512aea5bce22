"""Step budgets resuming across cycles: world-model jobs of one slot continue its lifelong
schedule, through a real rq worker, a real Redis and a store filled by a real sweep."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from rq.job import Job

from services.worldmodel.config import TrainConfig
from services.worldmodel.phase import _lineage_steps
from services.worldmodel.training import schedules
from shared import versions
from shared.store import Store
from shared.worker import queues_for, run_worker
from tests.worldmodel.test_jobs import TINY, swept_node

STEPS = 3
TRAIN: dict[str, Any] = {**TINY["train"], "steps": STEPS, "epochs": None,  # type: ignore[dict-item]
                         "schedule_steps": 10, "warmup_frac": 0.2, "start_lr": 1e-4, "lr": 2e-3,
                         "final_lr": 2e-4}
LIFELONG = {**copy.deepcopy(TINY), "train": TRAIN}


@pytest.fixture
def node(tmp_path, redis_url, monkeypatch):
    return swept_node(tmp_path, redis_url, monkeypatch, LIFELONG)


def _returned(job: Job) -> dict:
    result = job.latest_result()
    assert result is not None and isinstance(result.return_value, dict), result
    return result.return_value


def test_step_budgets_resume_across_cycles_through_a_real_worker(node):
    (queue,) = queues_for(node, ["worldmodel"])
    jobs = [queue.enqueue("services.worldmodel.jobs.train_world_model", kwargs={"slot": "wm_00"})
            for _ in range(2)]
    run_worker(node, ["worldmodel"], burst=True, metrics_port=0)
    first, second = (_returned(job) for job in jobs)
    assert first["stop_reason"] == second["stop_reason"] == "steps"
    assert first["steps"] == second["steps"] == STEPS and not second["time_capped"]
    assert second["parent"]["version"] == first["version"]
    store = Store(node.resolved_store_url())
    meta = versions.read_meta(store, "wm_00", second["version"])
    assert meta["steps"] == STEPS and meta["lifetime_steps"] == 2 * STEPS
    # The second job starts where the first left the schedule, not at a new warm-up.
    cfg = TrainConfig.preset(node.preset).replace(**TRAIN)
    assert meta["schedule"]["first_step"] == STEPS
    assert meta["schedule"]["lr_first"] == pytest.approx(schedules(STEPS, 10, cfg)[0])
    assert meta["schedule"]["lr_last"] == pytest.approx(schedules(2 * STEPS - 1, 10, cfg)[0])
    first_meta = versions.read_meta(store, "wm_00", first["version"])
    assert first_meta["schedule"]["lr_first"] == pytest.approx(cfg.start_lr)


def test_the_lineage_gives_old_versions_their_lifetime_step(tmp_path):
    """Versions from before lifelong schedules recorded only their own job's `steps`."""
    store = Store(str(tmp_path / "store"))
    old = versions.write_version(store, "wm_00", b"v1", b"r1", {"steps": 4, "parent": None})
    parent = {"slot": "wm_00", "version": old.version}
    newer = versions.write_version(store, "wm_00", b"v2", b"r2", {"steps": 5, "parent": parent})
    assert _lineage_steps(store, "wm_00", newer.version) == 9
    # Down to a version that records its lifetime steps.
    base = versions.write_version(store, "wm_00", b"v0", b"r0", {"steps": 7, "lifetime_steps": 70})
    on_top = versions.write_version(store, "wm_00", b"v3", b"r3",
                                    {"steps": 2, "parent": {"slot": "wm_00", "version": base.version}})
    assert _lineage_steps(store, "wm_00", on_top.version) == 72
