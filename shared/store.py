"""The shared store: an fsspec file system holding frames, manifests, tensors and reports.

Every file appears atomically and is immutable once written:
- local folders: written to a temporary name beside the target, then hard-linked into place
  (`link` fails if the target exists, so two writers can never both "win") and the temp removed;
- object stores (S3...): a single PUT, which the store itself makes atomic.
Readers get `MissingFile` or `CorruptFile` naming the file, never a half-written one.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import uuid
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import cv2
import fsspec
import numpy as np

from shared.schemas import FrameRecord
from shared.tensorfile import canonical_header

if TYPE_CHECKING:  # torch is heavy; only the model services load it
    import torch


class StoreError(RuntimeError):
    """A store operation failed; the message names the file."""


class MissingFile(StoreError, FileNotFoundError):
    pass


class CorruptFile(StoreError, ValueError):
    pass


class AlreadyExists(StoreError, FileExistsError):
    pass


def frame_path(node: str, round_id: str, frame_id: str) -> str:
    return f"frames/{node}/{round_id}/{frame_id}.jpg"


def manifest_path(node: str, round_id: str) -> str:
    return f"manifests/{node}/{round_id}.jsonl"


def report_path(node: str, name: str) -> str:
    return f"reports/{node}/{name}"


class Store:
    def __init__(self, url: str, **storage_options: Any):
        self.url = url
        self.fs, root = fsspec.core.url_to_fs(url, **storage_options)
        self.root = root.rstrip("/")
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self.local = "file" in protocols or "local" in protocols
        if self.local:
            os.makedirs(self.root, exist_ok=True)

    def full(self, rel: str) -> str:
        """The absolute path (or object key) of a store-relative path."""
        clean = PurePosixPath(rel)
        if clean.is_absolute() or ".." in clean.parts or not clean.parts:
            raise StoreError(f"invalid store path '{rel}': must be relative, without '..'")
        return f"{self.root}/{clean}"

    # ---- bytes -------------------------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        if not self.local:
            self.fs.invalidate_cache(self.full(rel))  # other processes write too
        return self.fs.exists(self.full(rel))

    def write_bytes(self, rel: str, data: bytes) -> str:
        """Write a new immutable file atomically; refuses to replace an existing one."""
        target = self.full(rel)
        if self.local:
            folder = os.path.dirname(target)
            os.makedirs(folder, exist_ok=True)
            tmp = os.path.join(folder, f".{os.path.basename(target)}.{uuid.uuid4().hex}.tmp")
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.link(tmp, target)
            except FileExistsError:
                raise AlreadyExists(f"{rel} already exists in the store; files are immutable") from None
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            # One PUT that the object store makes atomic; "create" adds If-None-Match: *, so of two
            # writers racing for the same name exactly one succeeds, as with the local link().
            if self.fs.exists(target):
                raise AlreadyExists(f"{rel} already exists in the store; files are immutable")
            try:
                self.fs.pipe_file(target, data, mode="create")
            except FileExistsError:
                raise AlreadyExists(f"{rel} already exists in the store; files are immutable") from None
            except OSError as exc:
                if "PreconditionFailed" in str(exc) or "412" in str(exc):
                    raise AlreadyExists(f"{rel} already exists in the store; files are immutable") from None
                raise StoreError(f"{rel}: could not write to {self.url}: {exc}") from None
        return rel

    def read_bytes(self, rel: str) -> bytes:
        try:
            return self.fs.cat_file(self.full(rel))
        except FileNotFoundError:
            raise MissingFile(f"{rel} is not in the store ({self.url})") from None
        except PermissionError as exc:
            raise StoreError(f"{rel}: access denied by the store ({self.url}): {exc}") from None
        except IsADirectoryError:
            raise StoreError(f"{rel} is a folder, not a file") from None

    def list(self, prefix: str, suffix: str = "") -> list[str]:
        """Store-relative paths under `prefix` (recursive), sorted; temporaries excluded."""
        base = self.full(prefix) if prefix.strip("/") else self.root
        if not self.local:
            self.fs.invalidate_cache(base)  # listings are cached; other processes write too
        if not self.fs.exists(base):
            return []
        paths = self.fs.find(base)
        out = []
        for p in paths:
            rel = str(p)[len(self.root) + 1:] if str(p).startswith(self.root) else str(p)
            name = rel.rsplit("/", 1)[-1]
            if name.startswith(".") or not rel.endswith(suffix):
                continue
            out.append(rel)
        return sorted(out)

    def read_verified(self, rel: str, expected_sha256: str) -> bytes:
        """The file's bytes, only if their sha256 matches: CorruptFile on a truncated or tampered file."""
        data = self.read_bytes(rel)
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256:
            raise CorruptFile(f"{rel}: content hash {actual[:12]}... does not match the "
                              f"expected {expected_sha256[:12]}... (truncated or tampered)")
        return data

    # ---- JSON ----------------------------------------------------------------------------------
    def write_json(self, rel: str, obj: Any) -> str:
        return self.write_bytes(rel, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def read_json(self, rel: str) -> Any:
        raw = self.read_bytes(rel)
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CorruptFile(f"{rel} is not valid JSON: {exc}") from None

    # ---- manifests (JSON lines of FrameRecord) ---------------------------------------------------
    def write_manifest(self, rel: str, records: Iterable[FrameRecord]) -> str:
        lines = [r.model_dump_json() for r in records]
        return self.write_bytes(rel, ("\n".join(lines) + "\n").encode())

    def read_manifest(self, rel: str) -> builtins.list[FrameRecord]:
        raw = self.read_bytes(rel)
        records = []
        for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(FrameRecord.model_validate_json(line))
            except ValueError as exc:
                first = str(exc).splitlines()[0]
                raise CorruptFile(f"{rel} line {number} is not a valid frame record: {first}") from None
        return records

    # ---- images -------------------------------------------------------------------------------
    def write_image(self, rel: str, rgb: np.ndarray, quality: int = 92) -> str:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise StoreError(f"{rel}: expected an RGB uint8 image, got {rgb.dtype} {rgb.shape}")
        ext = PurePosixPath(rel).suffix.lower()
        params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in (".jpg", ".jpeg") else []
        ok, buf = cv2.imencode(ext or ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
        if not ok:
            raise StoreError(f"{rel}: could not encode the image")
        return self.write_bytes(rel, buf.tobytes())

    def read_image(self, rel: str) -> np.ndarray:
        """RGB uint8 (H, W, 3); CorruptFile when the bytes are not a decodable image."""
        return decode_image(self.read_bytes(rel), rel)

    # ---- tensors (safetensors only: never pickle) -------------------------------------------------
    def write_tensors(self, rel: str, tensors: dict[str, torch.Tensor],
                      metadata: dict[str, str] | None = None) -> str:
        """Write a safetensors file; returns its sha256 (hex) for content addressing."""
        from safetensors.torch import save

        data = canonical_header(save({k: v.contiguous() for k, v in tensors.items()},
                                     metadata=metadata))
        self.write_bytes(rel, data)
        return hashlib.sha256(data).hexdigest()

    def read_tensors(self, rel: str, expected_sha256: str | None = None
                     ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """Tensors and metadata; CorruptFile on a hash mismatch or an unreadable file."""
        from safetensors import SafetensorError
        from safetensors.torch import load

        data = self.read_bytes(rel) if expected_sha256 is None else self.read_verified(rel, expected_sha256)
        try:
            tensors = load(data)
            metadata = _safetensors_metadata(data)
        except (SafetensorError, ValueError, json.JSONDecodeError) as exc:
            raise CorruptFile(f"{rel} is not a valid safetensors file: {exc}") from None
        return tensors, metadata


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode JPEG/PNG bytes to RGB uint8; CorruptFile naming `name` when that fails."""
    if not data:
        raise CorruptFile(f"{name} is empty")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise CorruptFile(f"{name} is not a decodable image ({len(data)} bytes)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def encode_jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise StoreError("could not encode a JPEG")
    return buf.tobytes()


def _safetensors_metadata(data: bytes) -> dict[str, str]:
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + header_len])
    return dict(header.get("__metadata__", {}) or {})


def store_for(settings) -> Store:
    """The store configured in `settings` (shared.config.Settings).

    Object-store credentials are not settings: the storage library reads them from its usual
    places (for S3: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or an instance role).
    """
    return Store(settings.resolved_store_url(), **settings.store_options)
