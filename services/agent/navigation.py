"""The agent drives the camera through the camera service's REST API, and records what it saw
as `navigate` rounds that feed the next cycle.

Each round starts at a random pose (so runs cover the scene), then takes `movements` actions
chosen from the agent's Q-values with the configured exploration. Frames are encoded by the very
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
from shared.camera_client import CameraClient
from shared.config import Settings
from shared.devices import torch_device
from shared.keys import Keys
from shared.metrics import SURPRISE
from shared.models.checkpoint import model_from_bytes
from shared.move_times import MoveTimes, node_move_times
from shared.pose import NOOP, apply_action, random_pose
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
    camera.move("absolute", *ranges.apply(random_pose(rng, ranges)).as_tuple())
    snap = camera.snapshot()
    recorder.add(snap, action=None)
    _count(result, snap)
    after_frame()
    obs, state = _observe(model, snap, recorder.round_id, ranges, spec)
    for step in range(movements + 1):
        if hold:  # the same view again, one no-op move later (not one of the agent's moves)
            snap, obs, state, surprise, error = _move(model, camera, recorder.round_id, ranges,
                                                      spec, snap.pose, state, NOOP, times)
            recorder.add(snap, action=NOOP, extra={"hold": True, "predicted_surprise": surprise,
                                                   "observed_error": error,
                                                   "dt": times.seconds[NOOP]})
            _count(result, snap)
            after_frame()
        if step == movements:
            break
        action, q = choose_action(net, obs[0], epsilon, temperature, rng)
        snap, obs, state, surprise, error = _move(model, camera, recorder.round_id, ranges, spec,
                                                  snap.pose, state, action, times)
        recorder.add(snap, action=action,
                     extra={"q_values": [round(float(v), 5) for v in q],
                            "predicted_surprise": surprise, "observed_error": error,
                            "dt": times.seconds[action]})
        SURPRISE.labels(recorder.node, "navigate", "predicted").observe(surprise)
        SURPRISE.labels(recorder.node, "navigate", "observed").observe(error)
        result.actions.append(action)
        result.observed_errors.append(error)
        result.predicted_surprise.append(surprise)
        _count(result, snap)
        after_frame()


def _observe(model, snap, round_id: str, ranges, spec) -> tuple[torch.Tensor, torch.Tensor]:
    """The agent's observation of a snapshot and the world model's state of it."""
    states: list[torch.Tensor] = []
    obs = observe(model, decode_image(snap.jpeg, round_id), [snap.pose.as_tuple()], ranges, spec,
                  states_out=states)
    return obs, states[-1]


def _move(model, camera: CameraClient, round_id: str, ranges, spec, pose, state, action: int,
          times: MoveTimes):
    """Make `action` from `pose` and grab the view: (snapshot, observation, state, the world
    model's predicted surprise of the move for the seconds it takes, the error its prediction
    actually made), the two figures rounded for the manifest."""
    target = apply_action(pose, action, ranges)
    predicted, surprise = model.predict(state, [pose.as_tuple()], [target.as_tuple()], ranges,
                                        dt=times.seconds[action])
    camera.move("absolute", *target.as_tuple())
    snap = camera.snapshot()
    obs, state = _observe(model, snap, round_id, ranges, spec)
    error = float(((predicted - state) ** 2).mean())
    return snap, obs, state, round(float(surprise[0]), 6), round(error, 6)


def _count(result: NavigationResult, snap) -> None:
    result.frames += 1
    if snap.dynamic_fraction is not None:
        result.dynamic_fractions.append(snap.dynamic_fraction)

