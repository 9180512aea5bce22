"""Dream shards: round trip through the store, and clear errors for bad files."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save

from services.dreamer.error_map import error_map_from_frames
from services.dreamer.rollout import generate
from shared.dreams import (
    Dreams,
    DreamShardError,
    ObservationSpec,
    read_dreams,
    read_index,
    read_shard,
    write_shards,
)
from shared.move_times import MoveTimes
from shared.pose import N_ACTIONS, ActionScale, PoseRanges
from shared.store import AlreadyExists, CorruptFile, MissingFile, Store

RANGES = PoseRanges(0.0, 360.0, -30.0, 30.0, 1.0, 10.0, True)
TIMES = MoveTimes(seconds=tuple(0.54 + 0.05 * a for a in range(N_ACTIONS)), jump_s=2.5,
                  samples=tuple(range(N_ACTIONS)), jump_samples=4)


@pytest.fixture
def dreams(tiny_wm):
    frames = np.random.default_rng(0).integers(0, 255, (7, 32, 32, 3), dtype=np.uint8)
    s0 = tiny_wm.encode_state(frames)
    poses = np.array([[40.0 * i, 0.0, 2.0] for i in range(7)])
    return generate(tiny_wm, s0, poses, RANGES, 5, torch.Generator().manual_seed(0),
                    scale=ActionScale(pan_tilt_deg=4.0), spec=ObservationSpec(pool_grid=1),
                    move_times=TIMES)


def test_round_trip(tmp_path, dreams):
    store = Store(str(tmp_path / "store"))
    index = write_shards(store, "dreams/node0/job1", dreams, slot="wm_00_00", version="abc",
                         node="node0", shard_size=3)
    assert [s["count"] for s in index["shards"]] == [3, 3, 1]
    assert index["count"] == 7 and index["length"] == 5 and index["obs_dim"] == dreams.obs_dim
    assert read_index(store, "dreams/node0/job1")["slot"] == "wm_00_00"
    back = read_dreams(store, "dreams/node0/job1")
    assert back.count == 7 and back.length == 5 and back.spec == ObservationSpec(pool_grid=1)
    assert back.scale == ActionScale(pan_tilt_deg=4.0) and back.ranges == RANGES
    assert torch.equal(back.actions, dreams.actions)
    torch.testing.assert_close(back.surprise, dreams.surprise)
    torch.testing.assert_close(back.surprise_delta, dreams.surprise_delta)
    torch.testing.assert_close(back.view_surprise, dreams.view_surprise)
    torch.testing.assert_close(back.poses, dreams.poses)
    torch.testing.assert_close(back.observations, dreams.observations, atol=1e-2, rtol=1e-3)  # fp16
    # time: every step's seconds are its action's move time, and the move times travel along
    assert back.move_times == TIMES and index["move_times"] == TIMES.to_dict()
    assert back.dt.dtype == torch.float32 and back.dt.shape == (7, 5)
    want = torch.tensor([[TIMES.seconds[a] for a in row] for row in back.actions.tolist()])
    torch.testing.assert_close(back.dt, want)
    one = read_shard(store, index["shards"][0]["path"], index["shards"][0]["sha256"])
    assert one.count == 3 and one.meta["node"] == "node0" and one.meta["version"] == "abc"
    with pytest.raises(AlreadyExists):  # immutable: a folder is written once
        write_shards(store, "dreams/node0/job1", dreams)


def test_missing_index_says_the_job_did_not_finish(tmp_path):
    store = Store(str(tmp_path))
    with pytest.raises(MissingFile, match="has not finished"):
        read_dreams(store, "dreams/none")


def test_truncated_shard_names_the_file(tmp_path, dreams):
    store = Store(str(tmp_path))
    index = write_shards(store, "d/j", dreams, shard_size=4)
    path = index["shards"][1]["path"]
    full = tmp_path / path
    data = full.read_bytes()
    full.chmod(0o644)
    full.write_bytes(data[: len(data) // 2])
    with pytest.raises(DreamShardError, match="shard-00001"):  # hash check in the index
        read_dreams(store, "d/j")
    with pytest.raises(DreamShardError, match="shard-00001"):  # no hash: parse fails
        read_shard(store, path)


def _bad(store, rel, tensors, meta):
    store.write_bytes(rel, save(tensors, metadata=meta))


def test_bad_shards_raise_clear_errors(tmp_path, dreams):
    store = Store(str(tmp_path))
    index = write_shards(store, "ok", dreams, shard_size=10)
    tensors, meta = store.read_tensors(index["shards"][0]["path"])
    _bad(store, "x/wrong_format.safetensors", tensors, {**meta, "format": "other"})
    with pytest.raises(DreamShardError, match=r"wrong_format.*not a dream shard"):
        read_shard(store, "x/wrong_format.safetensors")
    _bad(store, "x/shape.safetensors", {**tensors, "actions": tensors["actions"][:, :2].contiguous()}, meta)
    with pytest.raises(DreamShardError, match=r"shape\.safetensors.*'actions' has shape"):
        read_shard(store, "x/shape.safetensors")
    _bad(store, "x/dtype.safetensors", {**tensors, "surprise": tensors["surprise"].double()}, meta)
    with pytest.raises(DreamShardError, match="dtype"):
        read_shard(store, "x/dtype.safetensors")
    nan = tensors["surprise"].clone()
    nan[0, 0] = float("nan")
    _bad(store, "x/nan.safetensors", {**tensors, "surprise": nan}, meta)
    with pytest.raises(DreamShardError, match="NaN"):
        read_shard(store, "x/nan.safetensors")
    acts = tensors["actions"].clone()
    acts[0, 0] = 21
    _bad(store, "x/acts.safetensors", {**tensors, "actions": acts}, meta)
    with pytest.raises(DreamShardError, match="actions outside"):
        read_shard(store, "x/acts.safetensors")
    _bad(store, "x/meta.safetensors", tensors, {**meta, "observation_spec": json.dumps({"x": 1})})
    with pytest.raises(DreamShardError, match="bad dream metadata"):
        read_shard(store, "x/meta.safetensors")
    missing = dict(tensors)
    del missing["surprise_delta"]
    _bad(store, "x/missing.safetensors", missing, meta)
    with pytest.raises(DreamShardError, match="'surprise_delta' is missing"):
        read_shard(store, "x/missing.safetensors")
    store.write_bytes("x/garbage.safetensors", b"not a safetensors file at all")
    with pytest.raises(CorruptFile, match=r"garbage\.safetensors"):
        read_shard(store, "x/garbage.safetensors")


def test_shards_without_dt_are_refused_not_misread(tmp_path, dreams):
    """Formats 1 to 3 hold no dt (the seconds their steps were predicted for): refused with the
    remedy; a format-4 shard without dt, the view surprise or its move times is corrupt, and
    one whose dt is not its actions' move times too."""
    store = Store(str(tmp_path))
    index = write_shards(store, "ok", dreams, shard_size=10)
    tensors, meta = store.read_tensors(index["shards"][0]["path"])
    assert meta["format_version"] == "5"
    old = {k: v for k, v in tensors.items() if k != "dt"}
    old_meta = {k: v for k, v in meta.items() if k != "move_times"}
    for version in ("1", "2", "3"):
        _bad(store, f"x/v{version}.safetensors", old, {**old_meta, "format_version": version})
        with pytest.raises(DreamShardError, match=f"v{version}.*format {version} lacks dt.*regenerate"):
            read_shard(store, f"x/v{version}.safetensors")
    for name in ("dt", "view_surprise"):
        _bad(store, f"x/no_{name}.safetensors", {k: v for k, v in tensors.items() if k != name}, meta)
        with pytest.raises(DreamShardError, match=f"'{name}' is missing"):
            read_shard(store, f"x/no_{name}.safetensors")
    _bad(store, "x/no_times.safetensors", tensors, old_meta)
    with pytest.raises(DreamShardError, match=r"bad dream metadata.*move_times"):
        read_shard(store, "x/no_times.safetensors")
    _bad(store, "x/off.safetensors", {**tensors, "dt": tensors["dt"] + 0.5}, meta)
    with pytest.raises(DreamShardError, match="dt does not match the move times"):
        read_shard(store, "x/off.safetensors")
    bad_times = {**TIMES.to_dict(), "jump_s": -1.0}
    _bad(store, "x/neg.safetensors", tensors, {**meta, "move_times": json.dumps(bad_times)})
    with pytest.raises(DreamShardError, match="jump_s must be finite and >= 0"):
        read_shard(store, "x/neg.safetensors")
    for missing in ("dt", "move_times", "view_surprise"):  # only complete dreams are written
        with pytest.raises(ValueError, match="only complete dreams"):
            write_shards(store, f"x/rewrite_{missing}", dataclasses.replace(dreams, **{missing: None}))
    _bad(store, "x/v9.safetensors", tensors, {**meta, "format_version": "9"})
    with pytest.raises(DreamShardError, match="unsupported dream format version '9'"):
        read_shard(store, "x/v9.safetensors")


def test_parts_with_other_move_times_do_not_concatenate(dreams):
    other = dataclasses.replace(dreams, move_times=MoveTimes.uniform(2.0))
    with pytest.raises(ValueError, match="different move times"):
        Dreams.concat([dreams, other])
    assert Dreams.concat([dreams, dreams]).move_times == TIMES


@pytest.fixture
def measured_dreams(tiny_wm):
    rng = np.random.default_rng(5)
    frames = rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    s0 = tiny_wm.encode_state(frames)
    # One round of short pans: the map needs content held in place across a move.
    poses = np.stack([100.0 + 0.5 * np.arange(8), np.full(8, -10.0), np.full(8, 2.0)], 1)
    scale = ActionScale(pan_tilt_deg=4.0)
    emap = error_map_from_frames(tiny_wm, s0, poses, np.zeros(8, np.int64), RANGES, scale,
                                 times=0.7 * np.arange(8))
    return generate(tiny_wm, s0, poses, RANGES, 5, torch.Generator().manual_seed(0), scale=scale,
                    spec=ObservationSpec(pool_grid=1), error_map=emap, move_times=TIMES)


def test_measured_terms_round_trip_and_are_checked(tmp_path, measured_dreams, dreams):
    store = Store(str(tmp_path))
    write_shards(store, "m", measured_dreams, shard_size=3)
    back = read_dreams(store, "m")
    torch.testing.assert_close(back.measured_move, measured_dreams.measured_move)
    torch.testing.assert_close(back.measured_view, measured_dreams.measured_view)
    torch.testing.assert_close(back.rewards("measured"), measured_dreams.rewards("measured"))
    # Dreams made without a map are written and read without the pair (the format allows it).
    write_shards(store, "plain", dreams, shard_size=10)
    plain = read_dreams(store, "plain")
    assert plain.measured_move is None and plain.measured_view is None
    with pytest.raises(ValueError, match="measured error map"):
        plain.rewards("measured_view")
    index = read_index(store, "m")
    tensors, meta = store.read_tensors(index["shards"][0]["path"])
    half = {k: v for k, v in tensors.items() if k != "measured_view"}
    _bad(store, "x/half.safetensors", half, meta)
    with pytest.raises(DreamShardError, match="without the other"):
        read_shard(store, "x/half.safetensors")
    _bad(store, "x/extra.safetensors", {**tensors, "other": tensors["dt"].clone()}, meta)
    with pytest.raises(DreamShardError, match="unexpected tensors"):
        read_shard(store, "x/extra.safetensors")
    # A mix of parts with and without the map has no map as a whole.
    mixed = Dreams.concat([back, plain])
    assert mixed.measured_move is None and mixed.measured_view is None


def test_format_4_shards_still_read_without_progress(tmp_path, dreams):
    """A format-4 shard (before the progress pair) reads, with no progress terms."""
    store = Store(str(tmp_path))
    index = write_shards(store, "ok", dreams, shard_size=10)
    tensors, meta = store.read_tensors(index["shards"][0]["path"])
    plain = {k: v for k, v in tensors.items() if not k.startswith("progress_")}
    _bad(store, "x/v4.safetensors", plain, {**meta, "format_version": "4"})
    back = read_shard(store, "x/v4.safetensors")
    assert back.progress_move is None and back.progress_view is None
