"""Safetensors bytes that are the same for the same content.

safetensors writes a file's metadata from a hash map, in an order that changes from call to call:
the same tensors and metadata gave files, and so content hashes, that differ. Every writer of
safetensors in ptzjepa passes its bytes through `canonical_header`.
"""

from __future__ import annotations

import json
import struct


def canonical_header(data: bytes) -> bytes:
    """safetensors `data` with its metadata keys in sorted order. The header is rewritten at its
    own length, padded with the spaces that safetensors itself pads with (the tensors' offsets
    count from the header's end, so they stay valid); a header that would not fit is left as is."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.get("__metadata__")
    if not meta:
        return data
    header["__metadata__"] = dict(sorted(meta.items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(text) > n:
        return data
    return data[:8] + text + b" " * (n - len(text)) + data[8 + n:]
