"""Writing a scanned plan into the store as `import` rounds: frames, manifests, the import record;
all or nothing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from services.coordinator.legacy.scan import LegacyImportError, LegacyPlan, action_of, scan
from shared.schemas import FrameRecord, PoseModel
from shared.store import Store, StoreError, frame_path, manifest_path


def import_plan(store: Store, plan: LegacyPlan, *, node: str, camera: str) -> dict[str, Any]:
    """Write the plan's frames, then its manifests, then the import record; all or nothing."""
    round_ids = [f"{plan.import_id}-r{i:03d}" for i in range(len(plan.rounds))]
    record_path = f"imports/{node}/{plan.import_id}.json"
    if store.exists(record_path) or (round_ids and store.exists(manifest_path(node, round_ids[0]))):
        raise LegacyImportError(f"{plan.folder} was already imported into node {node} as "
                                f"{plan.import_id}; nothing was written")
    manifests_data = []
    for round_id, rnd in zip(round_ids, plan.rounds, strict=True):
        records = []
        for step, f in enumerate(rnd.frames):
            frame_id = f"{round_id}-{step:03d}"
            extra: dict[str, Any] = {"legacy_name": f.name, "legacy_kind": rnd.kind}
            if f.raw_pose != f.pose:
                extra["legacy_pose"] = list(f.raw_pose)
            action = None
            if step > 0 and rnd.commands is not None:
                extra["legacy_command"] = list(rnd.commands[step - 1])
                action = action_of(rnd.commands[step - 1])
            records.append(FrameRecord(
                frame_id=frame_id, path=frame_path(node, round_id, frame_id),
                pose=PoseModel(pan=f.pose[0], tilt=f.pose[1], zoom=f.pose[2]),
                captured_at=f.captured_at, node=node, camera=camera, source="import",
                round_id=round_id, step=step, action=action, dynamic_fraction=None, extra=extra))
        manifests_data.append((round_id, rnd, records))
    written: list[str] = []
    try:
        for _round_id, rnd, records in manifests_data:
            for f, rec in zip(rnd.frames, records, strict=True):
                written.append(store.write_bytes(rec.path, f.data))
        manifests = []
        for round_id, _rnd, records in manifests_data:
            written.append(store.write_manifest(manifest_path(node, round_id), records))
            manifests.append(written[-1])
        summary = {"import_id": plan.import_id, "folder": str(plan.folder), "node": node,
                   "camera": camera, "frames": plan.frames, "rounds": len(plan.rounds),
                   "agent_rounds": sum(1 for r in plan.rounds if r.kind == "navigate"),
                   "sweep_rounds": sum(1 for r in plan.rounds if r.kind == "sweep"),
                   "manifests": manifests, "notes": plan.notes, "skipped": plan.skipped,
                   "first_frame": plan.rounds[0].frames[0].captured_at.isoformat(),
                   "last_frame": max(f.captured_at for r in plan.rounds for f in r.frames).isoformat(),
                   "imported_at": time.time()}
        written.append(store.write_json(record_path, summary))
    except BaseException as exc:
        _roll_back(store, written)
        if isinstance(exc, StoreError):
            raise LegacyImportError(f"the import failed while writing ({exc}); what it had written "
                                    f"was removed") from None
        raise
    return summary


def _roll_back(store: Store, written: list[str]) -> None:
    # manifests first (they are what readers follow), then the frames
    for rel in sorted(written, key=lambda r: not r.startswith("manifests/")):
        try:
            store.fs.rm(store.full(rel))
        except (OSError, StoreError):
            pass


def import_legacy(store: Store, folder: str | Path, *, node: str, camera: str, **options) -> dict:
    return import_plan(store, scan(folder, **options), node=node, camera=camera)

