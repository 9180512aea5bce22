"""The camera policies bench/curiosity.py compares, and the sim camera loop that drives them."""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np

from services.agent.observe import observe
from services.agent.policy import choose_action
from services.camera.sim.camera import SimCamera, SimCameraConfig
from services.camera.sim.world import SimWorld
from services.worldmodel.data import FrameDataset
from shared.dreams import ObservationSpec
from shared.pose import N_ACTIONS, NOOP, ActionScale, Pose, PoseRanges, apply_action

HOLD = -2  # Episodes.actions of a hold frame (not a policy's move; not measured as one)

Policy = Callable[[np.ndarray, Pose], int]


class Episodes:
    """Frames a policy collected: rounds of (start frame, then one frame per move)."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []
        self.poses: list[tuple] = []
        self.rounds: list[int] = []
        self.actions: list[int] = []  # -1 at a round's start frame, HOLD at a hold frame
        self.times: list[float] = []  # simulated capture times

    def add(self, frame, pose: Pose, round_id: int, action: int, t: float) -> None:
        self.frames.append(frame)
        self.poses.append(pose.as_tuple())
        self.rounds.append(round_id)
        self.actions.append(action)
        self.times.append(t)

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


def drive(world: SimWorld, t0: float, starts: list[Pose], moves: int, policy: Policy, size: int,
          scale: ActionScale, round_offset: int = 0, holds: bool = False) -> Episodes:
    """A fresh sim camera whose clock starts at t0; per round, move to the start pose and grab a
    frame, then `moves` times: policy(frame, pose) -> action, move there (wrap/clamp), grab.
    With `holds`, every view is grabbed a second time one no-op move later (as the system's
    hold frames, `collect.hold_frames` / `agent.hold_frames`), before the policy moves on."""
    cam = SimCamera(world, SimCameraConfig(start_time_s=t0))
    ep = Episodes()

    def grab(round_id: int, action: int) -> tuple:
        frame, pose, t = cam.snapshot(size, size)
        ep.add(frame, pose, round_id, action, t)
        if holds:
            pose = cam.move_absolute(pose)
            frame, pose, t = cam.snapshot(size, size)
            ep.add(frame, pose, round_id, HOLD, t)
        return frame, pose

    for r, start in enumerate(starts):
        cam.move_absolute(start)
        frame, pose = grab(round_offset + r, -1)
        for _ in range(moves):
            a = policy(frame, pose)
            cam.move_absolute(apply_action(pose, a, world.ranges, scale))
            frame, pose = grab(round_offset + r, a)
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
