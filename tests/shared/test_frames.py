"""Frames from the store carry their capture times: the simulator's clock when known, else the
camera's capture time."""

from datetime import UTC, datetime, timedelta

import numpy as np

from shared.frames import capture_seconds, load_frames
from shared.schemas import FrameRecord, PoseModel
from shared.store import Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _record(round_id: str, i: int, sim_time: float | None, wall_s: float) -> FrameRecord:
    return FrameRecord(frame_id=f"{round_id}-{i}", path=f"frames/n/{round_id}/{i}.jpg",
                       pose=PoseModel(pan=10 * i, tilt=0, zoom=1),
                       captured_at=T0 + timedelta(seconds=wall_s), node="n", camera="c",
                       source="sweep", round_id=round_id, step=i, sim_time=sim_time)


def test_capture_seconds_prefers_the_simulated_clock():
    assert capture_seconds(_record("r", 0, 12.5, 1000.0)) == 12.5
    assert capture_seconds(_record("r", 0, None, 1.25)) == T0.timestamp() + 1.25


def test_loaded_frames_carry_times_in_capture_order(tmp_path):
    store = Store(str(tmp_path / "store"))
    rgb = np.zeros((16, 16, 3), np.uint8)
    rounds = {"a": [(3.0, 0.0), (3.75, 9.0), (5.0, 20.0)],  # simulated: sim_time wins
              "b": [(None, 100.0), (None, 101.5)]}       # a real camera: capture time
    for round_id, times in rounds.items():
        records = [_record(round_id, i, sim, wall) for i, (sim, wall) in enumerate(times)]
        for r in records:
            store.write_image(r.path, rgb)
        store.write_manifest(f"manifests/n/{round_id}.jsonl", records)
    frames = load_frames(store, 8, node="n")
    assert frames.times.dtype == np.float64
    by_round = [frames.times[frames.round_ids == rid] for rid in np.unique(frames.round_ids)]
    diffs = sorted(np.diff(t).tolist() for t in by_round)
    assert diffs == [[0.75, 1.25], [1.5]]
