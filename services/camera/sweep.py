"""The random sweep of the first cycle.

`iterations` rounds; each round moves to a random absolute pose and grabs a frame, then makes
`movements` random moves from the 21 discrete actions, grabbing a frame after each, through the
one episode runner (shared.episodes.run_round) that navigation and the benches use too. Moves are
computed with shared.pose (wrap and clamp), so a round's consecutive frames are real camera moves
that the world model learns from. With `hold_frames` (the default, `collect.hold_frames`) every
view is grabbed a second time after a no-op move (action 0, `extra.hold`): those transitions
show what the scene does while the camera holds still, the only error the dreamer's view atlas
is fitted on (services.dreamer.error_map). Each round's manifest is written when the round ends, and a
round cut short by a failure still gets its manifest for the frames it has: nothing is lost.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.camera_client import CameraClient, ClientSnapshot
from shared.contact_sheet import contact_sheet
from shared.episodes import RandomPolicy, run_round
from shared.pose import ACTIONS, PoseRanges, random_pose
from shared.progress import StopRequested
from shared.recording import RoundRecorder, frames_per_run, run_id
from shared.store import Store, decode_image, report_path


@dataclass
class SweepResult:
    collection_id: str
    frames: int = 0
    rounds: int = 0
    manifests: list[str] = field(default_factory=list)
    dynamic_fractions: list[float] = field(default_factory=list)
    kind_fractions: list[dict[str, float]] = field(default_factory=list)
    contact_sheet: str | None = None
    stopped: bool = False

    def summary(self, store: Store, node: str) -> dict:
        dyn = self.dynamic_fractions
        return {
            "collection_id": self.collection_id,
            "frames": self.frames,
            "rounds": self.rounds,
            "manifests": self.manifests,
            "frames_dir": store.full(f"frames/{node}"),
            "contact_sheet": self.contact_sheet,
            "mean_dynamic_fraction": round(sum(dyn) / len(dyn), 4) if dyn else None,
            "mean_kind_fractions": _mean_fractions(self.kind_fractions),
            "stopped": self.stopped,
        }


def _mean_fractions(fractions: list[dict[str, float]]) -> dict[str, float] | None:
    """Mean share of each zone kind over the frames that carry the simulator's ground truth."""
    if not fractions:
        return None
    kinds = sorted({k for f in fractions for k in f})
    return {k: round(sum(f.get(k, 0.0) for f in fractions) / len(fractions), 4) for k in kinds}


def run_sweep(client: CameraClient, store: Store, *, node: str, camera: str, iterations: int,
              movements: int, seed: int, collection_id: str | None = None,
              hold_frames: bool = True,
              on_frame: Callable[[int, int], None] | None = None) -> SweepResult:
    """Drive the camera through the sweep.

    `on_frame(done, total)` runs after each frame; raising StopRequested there ends the sweep
    early with everything collected so far kept (`result.stopped`).
    """
    rng = random.Random(seed)
    ranges = client.info().ranges.to_ranges()
    result = SweepResult(collection_id or run_id("sweep", None))
    total = frames_per_run(iterations, movements, hold_frames)
    thumbs: list = []
    try:
        for i in range(iterations):
            _run_round(client, store, rng, ranges, result, thumbs, node=node, camera=camera,
                       round_id=f"{result.collection_id}-r{i:03d}", movements=movements,
                       hold_frames=hold_frames, total=total, on_frame=on_frame)
    except StopRequested:
        result.stopped = True
    finally:  # a sweep cut short still shows what it saw
        if thumbs:
            result.contact_sheet = store.write_image(
                report_path(node, f"contact_sheet-{result.collection_id}.png"), contact_sheet(thumbs))
    return result


def _run_round(client: CameraClient, store: Store, rng: random.Random, ranges: PoseRanges,
               result: SweepResult, thumbs: list, *, node: str, camera: str, round_id: str,
               movements: int, hold_frames: bool, total: int,
               on_frame: Callable[[int, int], None] | None) -> None:
    recorder = RoundRecorder(store, node=node, camera=camera, round_id=round_id, source="sweep")

    def grab(snap: ClientSnapshot, action: int | None, hold: bool, extra: dict | None) -> None:
        image = decode_image(snap.jpeg, f"snapshot of {round_id} frame {len(recorder.records)}")
        recorder.add(snap, action=action, extra=extra)
        if snap.dynamic_fraction is not None:
            result.dynamic_fractions.append(snap.dynamic_fraction)
        if snap.kind_fractions is not None:
            result.kind_fractions.append(snap.kind_fractions)
        if not hold:  # a hold frame shows the same view again
            thumbs.append((image, f"{snap.pose.pan:.0f},{snap.pose.tilt:.0f} x{snap.pose.zoom:.1f}"))
        result.frames += 1
        if on_frame:
            on_frame(result.frames, total)

    try:
        run_round(client, RandomPolicy(rng, len(ACTIONS)), start=random_pose(rng, ranges),
                  movements=movements, hold_frames=hold_frames, ranges=ranges, on_grab=grab)
    finally:  # the frames of a round cut short are kept and listed
        if manifest := recorder.close():
            result.manifests.append(manifest)
            result.rounds += 1
