"""Frames from the store: the most recent rounds (sweeps or navigation runs), decoded and resized.

Used by the world-model trainer (its training data) and the dreamer (where dreams start).

Rounds come from the per-round manifests (this node's, and other nodes' when federated). A frame
that is missing or does not decode is skipped and reported, and its round is split there, because
the frames on either side of a gap are no longer one camera move apart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np

from shared.schemas import FrameRecord
from shared.store import Store, StoreError

log = logging.getLogger(__name__)


class NoFrames(ValueError):
    """Nothing to learn from: no manifests, or none of their frames could be read."""


@dataclass
class LoadedFrames:
    images: np.ndarray  # uint8 (N, S, S, 3)
    poses: np.ndarray  # float64 (N, 3) raw (pan, tilt, zoom)
    round_ids: np.ndarray  # (N,) ints; a new id after every gap
    times: np.ndarray  # float64 (N,) capture seconds (see `capture_seconds`)
    manifests: list[str]
    frame_ids: list[str]
    skipped: list[dict] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)


def recent_manifests(store: Store, node: str, include_other_nodes: bool, max_rounds: int
                     ) -> list[tuple[str, list[FrameRecord]]]:
    """The newest `max_rounds` manifests (by their first frame's capture time), oldest first."""
    prefix = "manifests" if include_other_nodes else f"manifests/{node}"
    rounds = []
    for rel in store.list(prefix, ".jsonl"):
        try:
            records = store.read_manifest(rel)
        except StoreError as exc:
            log.warning("skipping manifest: %s", exc)
            continue
        if records:
            rounds.append((records[0].captured_at, rel, records))
    rounds.sort(key=lambda r: (r[0], r[1]))
    return [(rel, records) for _, rel, records in rounds[-max_rounds:]]


def capture_seconds(record: FrameRecord) -> float:
    """When a frame was captured, in seconds: the simulator's clock when the record has one (the
    simulated world moves by that clock, not by the wall clock of the machine rendering it),
    else the camera's capture time as POSIX seconds."""
    if record.sim_time is not None:
        return float(record.sim_time)
    return record.captured_at.timestamp()


def load_frames(store: Store, img_size: int, *, node: str, include_other_nodes: bool = True,
                max_rounds: int = 60) -> LoadedFrames:
    manifests = recent_manifests(store, node, include_other_nodes, max_rounds)
    if not manifests:
        raise NoFrames("no frames in the store yet: run a collection (camera sweep) first")
    images, poses, round_ids, frame_ids, skipped, nodes = [], [], [], [], [], set()
    times: list[float] = []
    segment = 0
    for _rel, records in manifests:
        segment += 1
        for record in records:
            try:
                rgb = store.read_image(record.path)
            except StoreError as exc:
                skipped.append({"frame_id": record.frame_id, "path": record.path, "error": str(exc)})
                segment += 1  # the frames after a gap start a new chain
                continue
            images.append(cv2.resize(rgb, (img_size, img_size), interpolation=cv2.INTER_AREA))
            poses.append(record.pose.to_pose().as_tuple())
            round_ids.append(segment)
            times.append(capture_seconds(record))
            frame_ids.append(record.frame_id)
            nodes.add(record.node)
    if skipped:
        log.warning("skipped %d unreadable frames, e.g. %s", len(skipped), skipped[0]["error"])
    if not images:
        raise NoFrames(f"none of the {sum(len(r) for _, r in manifests)} listed frames could be read")
    return LoadedFrames(np.stack(images), np.asarray(poses, np.float64), np.asarray(round_ids),
                        np.asarray(times, np.float64), [rel for rel, _ in manifests], frame_ids,
                        skipped, sorted(nodes))
