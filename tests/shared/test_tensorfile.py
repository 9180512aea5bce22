"""The same tensors and metadata make the same safetensors bytes, and the bytes still load."""

from __future__ import annotations

import torch
from safetensors.torch import load, safe_open, save

from shared.tensorfile import canonical_header


def test_the_same_content_gives_the_same_bytes_and_loads_back(tmp_path):
    tensors = {"b": torch.arange(5.0), "a": torch.ones(2, 3)}
    metadata = {f"key{i}": f"value {i} é" for i in range(12)}
    files = {canonical_header(save(tensors, metadata=metadata)) for _ in range(20)}
    assert len(files) == 1
    data = files.pop()
    back = load(data)
    assert torch.equal(back["a"], tensors["a"]) and torch.equal(back["b"], tensors["b"])
    path = tmp_path / "t.safetensors"
    path.write_bytes(data)
    with safe_open(str(path), "pt") as f:
        assert f.metadata() == metadata
    # Without the rewrite the order of the metadata, and so the bytes, varies between calls.
    assert len({save(tensors, metadata=metadata) for _ in range(20)}) > 1


def test_a_file_without_metadata_is_left_as_it_is():
    data = save({"x": torch.zeros(3)})
    assert canonical_header(data) == data
