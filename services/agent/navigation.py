"""The agent drives the camera through the camera service's REST API, and records what it saw
as `navigate` rounds that feed the next cycle.

Each round starts at a random pose (so runs cover the scene), then takes `movements` actions
chosen from the agent's Q-values with the configured exploration, through the one episode runner
the sweep and the benches use too (shared.episodes.run_round). Frames are encoded by the very
world-model version the agent was trained with, into the observation space of its dreams. Every
frame's manifest line records the action, the Q-values, the world model's predicted surprise for
the move and the error it actually made (prediction vs the observed view's state). With
`agent.hold_frames` (the default) every view is grabbed again after a no-op move (action 0,
`extra.hold`), as in the sweep: the next cycle's view atlas is fitted on those holds
(services.dreamer.error_map), and the agent chooses its next move from the later frame.

The world model predicts each move for the seconds that action takes on this camera, measured
at the start of the run from the node's recorded rounds with the function the dreamer uses
(shared.move_times), so run-time predictions ask the model what the dreams asked it; the seconds
go into every frame's manifest line as `extra.dt`. The agent's observation holds no time: the
seconds are a function of the action, which the Q-network already chooses by.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import redis
import torch

from services.agent.checkpoint import from_bytes
from services.agent.observe import observe
from services.agent.policy import choose_action
from shared import versions
from shared.camera_client import CameraClient, ClientSnapshot
from shared.config import Settings
from shared.devices import torch_device
from shared.episodes import run_round
from shared.keys import Keys
from shared.metrics import SURPRISE
from shared.models.checkpoint import model_from_bytes
from shared.move_times import MoveTimes, node_move_times
from shared.pose import Pose, apply_action, random_pose
from shared.progress import StopRequested
from shared.recording import RoundRecorder, frames_per_run
from shared.store import Store, decode_image


class NoAgent(LookupError):
    pass


@dataclass
class NavigationResult:
    run_id: str
    frames: int = 0
    rounds: int = 0
    manifests: list[str] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    observed_errors: list[float] = field(default_factory=list)
    predicted_surprise: list[float] = field(default_factory=list)
    dynamic_fractions: list[float] = field(default_factory=list)
    move_times: MoveTimes | None = None
    stopped: bool = False

    def summary(self) -> dict:
        def mean(xs):
            return round(float(np.mean(xs)), 6) if xs else None
        return {"run_id": self.run_id, "frames": self.frames, "rounds": self.rounds,
                "manifests": self.manifests, "stopped": self.stopped,
                "mean_observed_error": mean(self.observed_errors),
                "mean_predicted_surprise": mean(self.predicted_surprise),
                "mean_dynamic_fraction": mean(self.dynamic_fractions),
                "move_times": self.move_times.summary() if self.move_times else None,
                "action_histogram": np.bincount(self.actions, minlength=21).tolist() if self.actions else []}


def navigate_camera(settings: Settings, store: Store, client: redis.Redis, camera: CameraClient, *,
                    iterations: int, movements: int, seed: int, run_id: str,
                    on_frame: Callable[[int, int], None] = lambda done, total: None) -> NavigationResult:
    keys = Keys(settings.redis_prefix)
    raw = client.get(keys.agent_latest(settings.node))
    if not raw:
        raise NoAgent(f"node {settings.node} has no trained agent yet: run the agent phase first")
    record = json.loads(raw)
    net, _cfg, meta = from_bytes(store.read_verified(record["path"], record["sha256"]))
    spec = meta["observation_spec"]
    slot, version = record["wm_slot"], record["wm_version"]
    times = node_move_times(store, settings.node, settings.worldmodel.max_rounds)
    result = NavigationResult(run_id, move_times=times)
    rng = np.random.default_rng(seed)
    ranges = camera.info().ranges.to_ranges()
    hold = settings.agent.hold_frames
    total = frames_per_run(iterations, movements, hold)
    epsilon, temperature = settings.agent.epsilon, settings.agent.temperature
    with versions.reading(client, keys, slot, version, reader=run_id):
        model = model_from_bytes(versions.read_share(store, slot, version), torch_device(settings))
        try:
            for i in range(iterations):
                recorder = RoundRecorder(store, node=settings.node, camera=settings.camera.name,
                                         round_id=f"{run_id}-r{i:03d}", source="navigate")
                try:
                    _round(model, net, spec, camera, recorder, ranges, rng, movements, epsilon,
                           temperature, hold, times, result, lambda: on_frame(result.frames, total))
                finally:
                    if manifest := recorder.close():
                        result.manifests.append(manifest)
                        result.rounds += 1
        except StopRequested:
            result.stopped = True
    return result


def _round(model, net, spec, camera: CameraClient, recorder: RoundRecorder, ranges, rng,
           movements: int, epsilon: float, temperature: float | None, hold: bool,
           times: MoveTimes, result: NavigationResult, after_frame: Callable[[], None]) -> None:
    policy = _AgentPolicy(model, net, spec, ranges, rng, epsilon, temperature, times,
                          recorder.round_id)

    def grab(snap: ClientSnapshot, action: int | None, is_hold: bool, extra: dict | None) -> None:
        recorder.add(snap, action=action, extra=extra)
        if action is not None and not is_hold and extra is not None:
            surprise, error = extra["predicted_surprise"], extra["observed_error"]
            SURPRISE.labels(recorder.node, "navigate", "predicted").observe(surprise)
            SURPRISE.labels(recorder.node, "navigate", "observed").observe(error)
            result.actions.append(action)
            result.observed_errors.append(error)
            result.predicted_surprise.append(surprise)
        _count(result, snap)
        after_frame()

    run_round(camera, policy, start=random_pose(rng, ranges), movements=movements,
              hold_frames=hold, ranges=ranges, on_grab=grab)


class _AgentPolicy:
    """The agent's moves from its Q-values; for every frame after the start, the world model's
    predicted surprise of the move that reached it (for the seconds that move takes) and the error
    its prediction actually made against the observed view's state, rounded for the manifest."""

    def __init__(self, model, net, spec, ranges, rng, epsilon: float, temperature: float | None,
                 times: MoveTimes, round_id: str) -> None:
        self.model, self.net, self.spec, self.ranges, self.rng = model, net, spec, ranges, rng
        self.epsilon, self.temperature, self.times, self.round_id = epsilon, temperature, times, round_id
        self.obs: torch.Tensor | None = None
        self.state: torch.Tensor | None = None
        self.pose: Pose | None = None
        self.q: list[float] = []

    def choose(self, snap: ClientSnapshot, step: int) -> int:
        assert self.obs is not None, "a round's first frame is seen before any choice"
        action, q = choose_action(self.net, self.obs[0], self.epsilon, self.temperature, self.rng)
        self.q = [round(float(v), 5) for v in q]
        return action

    def seen(self, snap: ClientSnapshot, action: int | None, hold: bool) -> dict | None:
        obs, state = _observe(self.model, snap, self.round_id, self.ranges, self.spec)
        extra: dict | None = None
        if action is not None:
            assert self.pose is not None, "a round's first frame has no action"
            # the prediction depends only on the state, poses and seconds, not on when it is made
            target = apply_action(self.pose, action, self.ranges)
            dt = self.times.seconds[action]
            predicted, surprise = self.model.predict(self.state, [self.pose.as_tuple()],
                                                     [target.as_tuple()], self.ranges, dt=dt)
            error = float(((predicted - state) ** 2).mean())
            extra = {} if hold else {"q_values": self.q}
            extra |= {"predicted_surprise": round(float(surprise[0]), 6),
                      "observed_error": round(error, 6), "dt": dt}
        self.obs, self.state, self.pose = obs, state, snap.pose
        return extra


def _observe(model, snap, round_id: str, ranges, spec) -> tuple[torch.Tensor, torch.Tensor]:
    """The agent's observation of a snapshot and the world model's state of it."""
    states: list[torch.Tensor] = []
    obs = observe(model, decode_image(snap.jpeg, round_id), [snap.pose.as_tuple()], ranges, spec,
                  states_out=states)
    return obs, states[-1]


def _count(result: NavigationResult, snap) -> None:
    result.frames += 1
    if snap.dynamic_fraction is not None:
        result.dynamic_fractions.append(snap.dynamic_fraction)

