"""The dreaming phase measures how long each action takes from this node's recorded rounds (the
rounds it dreams from) and dreams with those seconds; other nodes' rounds do not count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import torch

from services.dreamer.phase import dream
from shared import versions
from shared.dreams import read_dreams, read_index
from shared.models.checkpoint import share_bytes
from shared.move_times import measure_move_times
from shared.pose import N_ACTIONS, NOOP
from shared.schemas import FrameRecord, PoseModel
from shared.store import Store, frame_path, manifest_path
from tests.support.settings import make_settings


def write_round(store: Store, node: str, round_id: str, t0: float, seconds: dict[int, float],
                moves: list[int]) -> list[FrameRecord]:
    """A recorded round with real JPEGs: a start view, then each move and its hold frame."""
    rng = np.random.default_rng(len(round_id))
    steps: list[tuple[int | None, bool]] = [(None, False)]
    for a in moves:
        steps += [(a, False), (NOOP, True)]
    t, pan, out = t0, 10.0, []
    for i, (action, hold) in enumerate(steps):
        t += 0.0 if action is None else seconds[action]
        pan += 0.0 if action in (None, NOOP) else 0.5
        fid = f"{round_id}-{i:03d}"
        path = store.write_image(frame_path(node, round_id, fid),
                                 rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
        out.append(FrameRecord(
            frame_id=fid, path=path, pose=PoseModel(pan=pan, tilt=0.0, zoom=2.0),
            captured_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=t), node=node,
            camera="sim", source="sweep", round_id=round_id, step=i, action=action, sim_time=t,
            extra={"hold": True} if hold else {}))
    store.write_manifest(manifest_path(node, round_id), out)
    return out


def test_dreams_take_the_seconds_this_nodes_rounds_measured(tmp_path, redis_url, redis_client,
                                                            tiny_wm):
    settings = make_settings(tmp_path, redis_url, dreamer={"dreams": 7, "length": 3, "batch": 4,
                                                           "shard_dreams": 4, "seed": 2})
    store = Store(settings.resolved_store_url())
    mine = {a: 0.4 + 0.1 * a for a in range(N_ACTIONS)}
    rounds = [write_round(store, settings.node, f"r{k}", 100.0 * k, mine, [1, 2, 1, 2, 1, 2])
              for k in range(2)]
    write_round(store, "elsewhere", "x0", 0.0, {a: 9.0 for a in range(N_ACTIONS)}, [1] * 6)
    files = versions.write_version(store, "wm_00", share_bytes(tiny_wm), b"resume", {"parent": None})
    summary = dream(settings, store, redis_client, slot="wm_00", version=files.version,
                    job_id="job-time")
    want = measure_move_times(rounds)
    assert want.seconds[1] == pytest.approx(mine[1]) and want.noop_s == pytest.approx(mine[NOOP])
    assert want.samples[1] == 6 and want.samples[NOOP] == 12  # 2 rounds x 6 holds
    index = read_index(store, summary["folder"])
    assert index["move_times"] == want.to_dict()
    assert summary["move_times"] == want.summary()
    back = read_dreams(store, summary["folder"])
    assert back.count == 7 and back.move_times == want
    torch.testing.assert_close(back.dt, torch.from_numpy(want.of(back.actions)))
    # the error map measured the real transitions of these rounds (12 moves, 12 holds)
    assert summary["error_map"]["transitions"] == 24
    # the first version of a slot measures its progress against a fresh model of its config
    assert summary["progress_against"] == "initialisation"
    assert summary["progress_map"]["transitions"] == 24 and back.progress_view is not None


def test_a_later_version_measures_progress_against_its_parent(tmp_path, redis_url, redis_client,
                                                              tiny_wm):
    settings = make_settings(tmp_path, redis_url, dreamer={"dreams": 4, "length": 2, "batch": 4,
                                                           "shard_dreams": 4, "seed": 1})
    store = Store(settings.resolved_store_url())
    write_round(store, settings.node, "r0", 0.0, {a: 0.5 for a in range(N_ACTIONS)},
                [1, 2, 1, 2, 1, 2])
    first = versions.write_version(store, "wm_00", share_bytes(tiny_wm), b"resume",
                                   {"parent": None})
    # the same weights under another name: a version is named by its file's hash, so the file
    # must differ (here in its metadata alone) for the slot to hold two versions
    second = versions.write_version(store, "wm_00", share_bytes(tiny_wm, extra={"copy": "2"}),
                                    b"resume2",
                                    {"parent": {"slot": "wm_00", "version": first.version}})
    assert second.version != first.version
    summary = dream(settings, store, redis_client, slot="wm_00", version=second.version,
                    job_id="job-progress")
    assert summary["progress_against"] == first.version
    # the same weights: nothing was learnt between the two versions
    back = read_dreams(store, summary["folder"])
    assert back.progress_view.abs().max() < 1e-6 and back.progress_move.abs().max() < 1e-6
