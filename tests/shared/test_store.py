import threading
from datetime import UTC, datetime

import numpy as np
import pytest
import torch

from shared.schemas import FrameRecord, PoseModel
from shared.store import AlreadyExists, CorruptFile, MissingFile, Store, StoreError, manifest_path


@pytest.fixture
def store(tmp_path):
    return Store(str(tmp_path / "store"))


def _record(i: int) -> FrameRecord:
    return FrameRecord(frame_id=f"f{i}", path=f"frames/n/r/f{i}.jpg", pose=PoseModel(pan=i, tilt=0, zoom=1),
                       captured_at=datetime(2026, 1, 1, tzinfo=UTC), node="n", camera="c",
                       source="sweep", round_id="r", step=i)


def test_image_round_trip_and_listing(store):
    yy, xx = np.mgrid[0:40, 0:50]
    img = np.stack([yy * 6, xx * 5, (yy + xx) * 2], axis=-1).astype(np.uint8)  # smooth: JPEG-friendly
    store.write_image("frames/n/r/a.jpg", img)
    back = store.read_image("frames/n/r/a.jpg")
    assert back.shape == img.shape and np.abs(back.astype(int) - img).mean() < 4
    assert store.list("frames", ".jpg") == ["frames/n/r/a.jpg"]


def test_files_are_immutable(store):
    store.write_bytes("a.bin", b"1")
    with pytest.raises(AlreadyExists, match=r"a\.bin"):
        store.write_bytes("a.bin", b"2")
    assert store.read_bytes("a.bin") == b"1"


def test_concurrent_writers_exactly_one_wins(store):
    wins, losses = [], []

    def write(i):
        try:
            store.write_bytes("race.bin", bytes([i]) * 100_000)
            wins.append(i)
        except AlreadyExists:
            losses.append(i)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(wins) == 1 and len(losses) == 7
    assert store.read_bytes("race.bin") == bytes([wins[0]]) * 100_000
    assert store.list("", "") == ["race.bin"]  # no temporaries left behind


def test_missing_and_corrupt_files_name_the_file(store):
    with pytest.raises(MissingFile, match=r"nope\.jpg"):
        store.read_image("nope.jpg")
    store.write_bytes("bad.jpg", b"\xff\xd8garbage")
    with pytest.raises(CorruptFile, match=r"bad\.jpg"):
        store.read_image("bad.jpg")
    store.write_bytes("empty.jpg", b"")
    with pytest.raises(CorruptFile, match=r"empty\.jpg is empty"):
        store.read_image("empty.jpg")


def test_paths_cannot_escape_the_store(store):
    for bad in ("../x", "/etc/passwd", ""):
        with pytest.raises(StoreError):
            store.write_bytes(bad, b"x")


def test_manifest_round_trip_and_corrupt_line(store):
    rel = manifest_path("n", "r")
    store.write_manifest(rel, [_record(0), _record(1)])
    back = store.read_manifest(rel)
    assert [r.frame_id for r in back] == ["f0", "f1"] and back[1].pose.pan == 1
    second_line_bad = _record(0).model_dump_json().encode() + b"\n{\"frame_id\": 1}\n"
    store.write_bytes("manifests/n/bad.jsonl", second_line_bad)
    with pytest.raises(CorruptFile, match=r"bad\.jsonl line 2"):
        store.read_manifest("manifests/n/bad.jsonl")


def test_tensors_hash_checked_and_truncation_detected(store):
    digest = store.write_tensors("m.safetensors", {"w": torch.arange(6.0)}, {"config": "{}"})
    tensors, meta = store.read_tensors("m.safetensors", expected_sha256=digest)
    assert torch.equal(tensors["w"], torch.arange(6.0)) and meta == {"config": "{}"}
    with pytest.raises(CorruptFile, match="does not match"):
        store.read_tensors("m.safetensors", expected_sha256="0" * 64)
    store.write_bytes("t.safetensors", store.read_bytes("m.safetensors")[:-7])
    with pytest.raises(CorruptFile, match=r"t\.safetensors"):
        store.read_tensors("t.safetensors")
