"""The camera policies bench/curiosity.py compares, and the sim camera that they drive through
the system's own episode runner (shared.episodes.run_round), so bench frames are the frames the
camera service and navigation would store: JPEG-encoded by the service's encoder and decoded as
navigation decodes them."""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np

from services.agent.observe import observe
from services.agent.policy import choose_action
from services.camera.controller import CameraController
from services.camera.drivers.sim import SimDriver
from services.camera.sim.camera import SimCamera, SimCameraConfig
from services.camera.sim.world import SimWorld
from services.worldmodel.data import FrameDataset
from shared.camera_client import ClientSnapshot
from shared.config import CollectSettings
from shared.dreams import ObservationSpec
from shared.episodes import run_round
from shared.pose import N_ACTIONS, NOOP, ActionScale, Pose, PoseRanges
from shared.store import decode_image, encode_jpeg

HOLD = -2  # Episodes.actions of a hold frame (not a policy's move; not measured as one)

JPEG_QUALITY = CollectSettings().jpeg_quality  # the camera service's default
Policy = Callable[[np.ndarray, Pose], int]


class Episodes:
    """Frames a policy collected: rounds of (start frame, then one frame per move)."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []
        self.poses: list[tuple] = []
        self.rounds: list[int] = []
        self.actions: list[int] = []  # -1 at a round's start frame, HOLD at a hold frame
        self.times: list[float] = []  # simulated capture times
        self.kinds: list[dict[str, float]] = []  # the simulator's view share per zone kind

    def add(self, frame, pose: Pose, round_id: int, action: int, t: float,
            kinds: dict[str, float] | None = None) -> None:
        self.frames.append(frame)
        self.poses.append(pose.as_tuple())
        self.rounds.append(round_id)
        self.actions.append(action)
        self.times.append(t)
        self.kinds.append(kinds or {})

    def dataset(self, ranges: PoseRanges) -> FrameDataset:
        return FrameDataset(np.stack(self.frames), np.array(self.poses), np.array(self.rounds),
                            np.array(self.times, dtype=np.float64), ranges)

    def steps(self) -> list[list[tuple[int | None, float]]]:
        """Per round, (the action that reached each frame, its capture time), as
        shared.move_times.move_times_from_steps takes them: a hold frame is the no-op, a round's
        start frame an absolute move (None)."""
        rounds: dict[int, list[tuple[int | None, float]]] = {}
        for r, a, t in zip(self.rounds, self.actions, self.times, strict=True):
            action = NOOP if a == HOLD else None if a < 0 else a
            rounds.setdefault(r, []).append((action, t))
        return list(rounds.values())


class SimServiceCamera:
    """The simulator behind the camera service's own driver and controller, in process: the same
    range checks, and the same `ClientSnapshot`s a CameraClient gets over HTTP (the rendered view
    JPEG-encoded by the service's encoder, the simulator's ground truth alongside)."""

    def __init__(self, camera: SimCamera, size: int, jpeg_quality: int = JPEG_QUALITY) -> None:
        self.controller = CameraController(SimDriver(camera, size, size), "bench")
        self.jpeg_quality = jpeg_quality

    def move(self, mode: str, pan: float, tilt: float, zoom: float) -> Pose:
        return self.controller.move(mode, pan, tilt, zoom)

    def snapshot(self) -> ClientSnapshot:
        snap = self.controller.snapshot()
        return ClientSnapshot(jpeg=encode_jpeg(snap.image, self.jpeg_quality), pose=snap.pose,
                              captured_at=snap.captured_at, sim_time=snap.sim_time,
                              dynamic_fraction=snap.dynamic_fraction,
                              kind_fractions=snap.kind_fractions)


class _Recorded:
    """A bench policy (frame, pose) -> action as the runner's policy; every frame it is shown is
    decoded as navigation decodes a snapshot, and kept in `ep`."""

    def __init__(self, policy: Policy, ep: Episodes, round_id: int) -> None:
        self.policy, self.ep, self.round_id = policy, ep, round_id
        self.frame: np.ndarray | None = None

    def choose(self, snap: ClientSnapshot, step: int) -> int:
        assert self.frame is not None, "a round's first frame is seen before any choice"
        return self.policy(self.frame, snap.pose)

    def seen(self, snap: ClientSnapshot, action: int | None, hold: bool) -> dict | None:
        self.frame = decode_image(snap.jpeg, f"bench round {self.round_id}")
        code = HOLD if hold else -1 if action is None else action
        assert snap.sim_time is not None, "the simulator stamps every snapshot"
        self.ep.add(self.frame, snap.pose, self.round_id, code, snap.sim_time,
                    kinds=snap.kind_fractions)
        return None


def drive(world: SimWorld, t0: float, starts: list[Pose], moves: int, policy: Policy, size: int,
          scale: ActionScale, round_offset: int = 0, holds: bool = False) -> Episodes:
    """A fresh sim camera whose clock starts at t0, behind the camera service's driver
    (SimServiceCamera); per round, shared.episodes.run_round: move to the start pose and grab a
    frame, then `moves` times: policy(frame, pose) -> action, move there (wrap/clamp), grab.
    With `holds`, every view is grabbed a second time one no-op move later (as the system's
    hold frames, `collect.hold_frames` / `agent.hold_frames`), before the policy moves on."""
    camera = SimServiceCamera(SimCamera(world, SimCameraConfig(start_time_s=t0)), size)
    ep = Episodes()
    for r, start in enumerate(starts):
        run_round(camera, _Recorded(policy, ep, round_offset + r), start=start, movements=moves,
                  hold_frames=holds, ranges=world.ranges, scale=scale,
                  on_grab=lambda snap, action, hold, extra: None)
    return ep


def agent_policy(model, q_net, spec: ObservationSpec, ranges: PoseRanges, epsilon: float,
                 rng: np.random.Generator) -> Policy:
    """The trained agent, observing each frame the way the agent service does."""
    def policy(frame, pose: Pose) -> int:
        obs = observe(model, frame, [pose.as_tuple()], ranges, spec)
        return choose_action(q_net, obs[0], epsilon=epsilon, rng=rng)[0]
    return policy


def random_policy(rng: random.Random, hold: float = 0.0) -> Policy:
    """Uniform over the 21 actions; with `hold` > 0, the no-op (holding still) with that
    probability first."""
    return lambda frame, pose: 0 if hold and rng.random() < hold else rng.randrange(N_ACTIONS)
