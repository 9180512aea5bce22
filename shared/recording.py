"""Recording what a camera saw during a run: frames into the store, one manifest per round.

Used by the random sweep (camera service) and agent navigation (agent service), so both write
the same manifest lines. `close()` writes the round's manifest from whatever frames were
recorded, so a round cut short by an error or a stop request still lists every frame it wrote.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC
from typing import Any, Literal

from shared.camera_client import ClientSnapshot
from shared.metrics import FRAMES_COLLECTED
from shared.schemas import FrameRecord, PoseModel
from shared.store import Store, frame_path, manifest_path


def frames_per_run(iterations: int, movements: int, hold_frames: bool) -> int:
    """Frames a sweep or navigation run records: per round the start view and one per move, each
    followed by its hold frame (the same view one no-op move later) when `hold_frames`."""
    return iterations * (movements + 1) * (2 if hold_frames else 1)


def run_id(kind: str, job_id: str | None) -> str:
    """A short, unique name for one run's rounds (`sweep-...`, `nav-...`), derived from its job id.

    Hashed, not truncated: cycle job ids share long prefixes (`cycle-<time>-...`).
    """
    source = job_id or uuid.uuid4().hex
    return f"{kind}-{hashlib.sha256(source.encode()).hexdigest()[:12]}"


class RoundRecorder:
    def __init__(self, store: Store, *, node: str, camera: str, round_id: str,
                 source: Literal["sweep", "navigate", "import"]):
        self.store, self.node, self.camera = store, node, camera
        self.round_id, self.source = round_id, source
        self.records: list[FrameRecord] = []
        self.manifest: str | None = None

    def add(self, snap: ClientSnapshot, *, action: int | None,
            extra: dict[str, Any] | None = None) -> FrameRecord:
        step = len(self.records)
        frame_id = f"{self.round_id}-{step:03d}"
        path = self.store.write_bytes(frame_path(self.node, self.round_id, frame_id), snap.jpeg)
        captured = snap.captured_at if snap.captured_at.tzinfo else \
            snap.captured_at.replace(tzinfo=UTC)
        record = FrameRecord(frame_id=frame_id, path=path, pose=PoseModel.of(snap.pose),
                             captured_at=captured, node=self.node, camera=self.camera,
                             source=self.source, round_id=self.round_id, step=step, action=action,
                             sim_time=snap.sim_time, dynamic_fraction=snap.dynamic_fraction,
                             kind_fractions=snap.kind_fractions, extra=extra or {})
        self.records.append(record)
        FRAMES_COLLECTED.labels(self.node, self.source).inc()
        return record

    def close(self) -> str | None:
        if self.records and self.manifest is None:
            self.manifest = self.store.write_manifest(manifest_path(self.node, self.round_id),
                                                      self.records)
        return self.manifest

    def __enter__(self) -> RoundRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
