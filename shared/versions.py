"""Published world-model versions: content-addressed files in the store, fenced records in Redis.

A version is the sha256 of its sharing checkpoint. Publishing writes three immutable files
(`models/<slot>/<version>.safetensors` weights to share, `<version>.resume.safetensors` with the
optimizer state, `<version>.json` metadata) and then records the version through the lease's
compare-and-set (shared.leases). Files come first: a publish refused by the fencing check leaves
only unreferenced files behind, never a record pointing at a missing or partial file. Readers
verify the hash of every file they load.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis

from shared.keys import Keys
from shared.leases import Lease, LeaseManager
from shared.store import AlreadyExists, Store


class VersionError(LookupError):
    pass


@dataclass(frozen=True)
class VersionFiles:
    slot: str
    version: str

    @property
    def share(self) -> str:
        return f"models/{self.slot}/{self.version}.safetensors"

    @property
    def resume(self) -> str:
        return f"models/{self.slot}/{self.version}.resume.safetensors"

    @property
    def meta(self) -> str:
        return f"models/{self.slot}/{self.version}.json"


def _put(store: Store, rel: str, data: bytes) -> None:
    try:
        store.write_bytes(rel, data)
    except AlreadyExists:
        pass  # content-addressed: the same name holds the same bytes


def write_version(store: Store, slot: str, share: bytes, resume: bytes,
                  metadata: dict[str, Any]) -> VersionFiles:
    """Write the version's files (immutable, named by the sharing checkpoint's hash)."""
    version = hashlib.sha256(share).hexdigest()
    files = VersionFiles(slot, version)
    _put(store, files.share, share)
    _put(store, files.resume, resume)
    meta = {**metadata, "slot": slot, "version": version,
            "resume_sha256": hashlib.sha256(resume).hexdigest()}
    try:
        store.write_json(files.meta, meta)
    except AlreadyExists:
        pass
    return files


def publish_version(leases: LeaseManager, lease: Lease, files: VersionFiles, store: Store) -> dict:
    """Fenced publication of written files; raises shared.leases.StaleLease when refused."""
    meta = store.read_json(files.meta)
    return leases.publish(lease, files.version, extra={"resume_sha256": meta["resume_sha256"],
                                                        "parent": meta.get("parent")})


def latest(leases: LeaseManager, slot: str) -> dict | None:
    return leases.latest(slot)


def read_share(store: Store, slot: str, version: str) -> bytes:
    return store.read_verified(VersionFiles(slot, version).share, version)


def read_resume(store: Store, slot: str, version: str) -> bytes:
    files = VersionFiles(slot, version)
    meta = read_meta(store, slot, version)
    return store.read_verified(files.resume, meta["resume_sha256"])


def read_meta(store: Store, slot: str, version: str) -> dict:
    meta = store.read_json(VersionFiles(slot, version).meta)
    if meta.get("version") != version:
        raise VersionError(f"models/{slot}/{version}.json describes version {meta.get('version')}")
    return meta


def newest(leases: LeaseManager, slots: list[str]) -> dict | None:
    """The most recently published record among `slots` (with its slot), or None."""
    records = [(r, s) for s in slots if (r := leases.latest(s)) is not None]
    if not records:
        return None
    record, slot = max(records, key=lambda rs: rs[0]["time"])
    return {**record, "slot": slot}


@contextmanager
def reading(client: redis.Redis, keys: Keys, slot: str, version: str, reader: str,
            ttl_s: float = 3600.0) -> Iterator[None]:
    """Register a shared, expiring read of a version while it is in use.

    Published files are immutable and hash-checked, so readers need no lock against writers
    (the original did, because it overwrote checkpoints in place). The registration lets a future
    clean-up of old versions skip those in use, and expires on its own if the reader dies.
    """
    member = f"{version}:{reader}"
    client.zadd(keys.version_readers(slot), {member: time.time() + ttl_s})
    try:
        yield
    finally:
        client.zrem(keys.version_readers(slot), member)


def history(store: Store, slot: str, version: str, limit: int = 1000) -> list[dict]:
    """The version and its ancestors (newest first), following each metadata's `parent`."""
    chain: list[dict] = []
    current: str | None = version
    while current and len(chain) < limit:
        meta = read_meta(store, slot, current)
        chain.append(meta)
        parent = meta.get("parent")
        current = parent.get("version") if isinstance(parent, dict) and parent.get("slot") == slot \
            else None
    return chain
