"""The one episode runner: a round of camera moves, shared by the sweep, navigation and benches.

A round moves to an absolute start pose and grabs the view, then makes `movements` moves chosen by
a policy, grabbing the view after each. With `hold_frames` every view is grabbed a second time after
a no-op move (action 0, `extra.hold`), before the policy chooses the next move from that later
frame: hold transitions show what the scene does while the camera holds still. The frame order is
therefore start, [hold], move 1, [hold], ..., move N, [hold].

Every move is computed from the pose the camera reported with its latest view, with shared.pose
(wrap and clamp to `ranges`), so no out-of-range pose is ever sent. The runner only moves and
grabs: the policy's `seen` hook sees every snapshot (and may return what the frame's manifest line
records beyond the hold flag) and the caller's `on_grab` keeps it. `on_grab` may raise
shared.progress.StopRequested; the round then ends at once with every frame grabbed so far handed
over, and the caller closes what it keeps (its manifest) in its own `finally`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from shared.camera_client import ClientSnapshot
from shared.pose import NOOP, ActionScale, Pose, PoseRanges, apply_action


class Camera(Protocol):
    """The two calls a round makes (shared.camera_client.CameraClient has them)."""

    def move(self, mode: str, pan: float, tilt: float, zoom: float) -> Pose: ...

    def snapshot(self) -> ClientSnapshot: ...


class Policy(Protocol):
    def choose(self, snap: ClientSnapshot, step: int) -> int:
        """The index of shared.pose.ACTIONS to make from the view `snap` (`step` from 0)."""
        ...

    def seen(self, snap: ClientSnapshot, action: int | None, hold: bool) -> dict | None:
        """Called for every grabbed snapshot (action None at the round's start, NOOP at a hold
        frame); returns the manifest `extra` of the frame beyond `hold`, or None."""
        ...


# on_grab(snapshot, action, hold, extra): extra is the manifest's, `{"hold": True}` first at a hold
OnGrab = Callable[[ClientSnapshot, int | None, bool, dict | None], None]


def run_round(camera: Camera, policy: Policy, *, start: Pose, movements: int, hold_frames: bool,
              ranges: PoseRanges, on_grab: OnGrab, scale: ActionScale = ActionScale()) -> int:
    """Drive one round (see the module doc); returns the number of frames grabbed."""
    frames = 0

    def grab(action: int | None, hold: bool) -> ClientSnapshot:
        nonlocal frames
        snap = camera.snapshot()
        seen = policy.seen(snap, action, hold)
        extra = {"hold": True, **(seen or {})} if hold else seen
        frames += 1
        on_grab(snap, action, hold, extra)
        return snap

    def move(pose: Pose, action: int) -> None:
        camera.move("absolute", *apply_action(pose, action, ranges, scale).as_tuple())

    camera.move("absolute", *ranges.apply(start).as_tuple())
    snap = grab(None, False)
    for step in range(movements + 1):
        if hold_frames:  # the same view again, one no-op move later (not one of the policy's moves)
            move(snap.pose, NOOP)
            snap = grab(NOOP, True)
        if step == movements:
            break
        action = policy.choose(snap, step)
        move(snap.pose, action)
        snap = grab(action, False)
    return frames


class RandomPolicy:
    """Uniform over the actions, drawn from `rng` (a random.Random or anything with randrange)."""

    def __init__(self, rng, n_actions: int) -> None:
        self.rng = rng
        self.n_actions = n_actions

    def choose(self, snap: ClientSnapshot, step: int) -> int:
        return int(self.rng.randrange(self.n_actions))

    def seen(self, snap: ClientSnapshot, action: int | None, hold: bool) -> dict | None:
        return None
