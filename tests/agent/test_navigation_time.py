"""Navigation asks the world model about each move for the seconds that action takes on this
camera, measured at the start of the run from the node's recorded rounds (as the dreamer does)."""

from __future__ import annotations

import hashlib
import itertools
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import torch

from services.agent.checkpoint import to_bytes
from services.agent.config import AgentConfig
from services.agent.navigation import navigate_camera
from services.agent.observe import observe
from services.agent.qnet import QNetwork
from services.camera.app import create_app
from shared import versions
from shared.camera_client import camera_client_for
from shared.dreams import ObservationSpec
from shared.keys import Keys
from shared.models.checkpoint import share_bytes
from shared.move_times import measure_move_times
from shared.pose import N_ACTIONS, NOOP
from shared.schemas import FrameRecord, PoseModel
from shared.store import Store, decode_image, manifest_path
from tests.support.servers import ThreadedServer
from tests.support.settings import make_settings

# Seconds per action on the recorded rounds: each action its own, none of them the sim's.
RECORDED = {a: 0.3 + 0.2 * a for a in range(N_ACTIONS)}


def recorded_round(node: str) -> list[FrameRecord]:
    """A sweep round whose every action was made 3 times, each view then held (the no-op)."""
    t, out = 0.0, []
    steps: list[tuple[int | None, bool]] = [(None, False)]
    for a in list(range(1, N_ACTIONS)) * 3:
        steps += [(a, False), (NOOP, True)]
    steps += [(NOOP, False)] * 3
    for i, (action, hold) in enumerate(steps):
        t += 0.0 if action is None else RECORDED[action]
        out.append(FrameRecord(
            frame_id=f"old-{i:03d}", path=f"frames/{node}/old/{i}.jpg",
            pose=PoseModel(pan=0.0, tilt=0.0, zoom=1.0),
            captured_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=t), node=node,
            camera="sim", source="sweep", round_id="old", step=i, action=action, sim_time=t,
            extra={"hold": True} if hold else {}))
    return out


def publish_agent(store: Store, client, settings, model, spec: ObservationSpec) -> None:
    """A published world-model version and an (untrained) agent recorded as the node's latest."""
    files = versions.write_version(store, "wm_00", share_bytes(model), b"resume", {"parent": None})
    torch.manual_seed(0)
    net = QNetwork(spec.obs_dim(model.cfg.encoder.dim), (8,))
    data = to_bytes(net, AgentConfig(hidden=(8,)), spec)
    path = store.write_bytes("agents/test/agent.safetensors", data)
    record = {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "wm_slot": "wm_00",
              "wm_version": files.version}
    client.set(Keys(settings.redis_prefix).agent_latest(settings.node), json.dumps(record))


@pytest.mark.parametrize("hold", [True, False])
def test_each_move_is_predicted_for_its_actions_measured_seconds(tmp_path, redis_url,
                                                                 redis_client, tiny_wm, hold):
    settings = make_settings(tmp_path, redis_url, camera={"sim": {"width": 48, "height": 48}},
                             agent={"hold_frames": hold})
    store = Store(settings.resolved_store_url())
    old = recorded_round(settings.node)
    store.write_manifest(manifest_path(settings.node, "old"), old)
    spec = ObservationSpec(pool_grid=1)
    publish_agent(store, redis_client, settings, tiny_wm, spec)
    with ThreadedServer(create_app(settings), port=settings.services.camera_port), \
            camera_client_for(settings) as camera:
        result = navigate_camera(settings, store, redis_client, camera, iterations=1,
                                 movements=4, seed=3, run_id="nav-time")
        ranges = camera.info().ranges.to_ranges()
    want = measure_move_times([old])
    assert result.move_times == want
    assert want.seconds[5] == pytest.approx(RECORDED[5]) and want.noop_s == pytest.approx(0.3)
    assert result.summary()["move_times"] == want.summary()
    records = store.read_manifest(result.manifests[0])
    assert len(records) == (10 if hold else 5)
    for before, rec in itertools.pairwise(records):
        action = NOOP if rec.extra.get("hold") else rec.action
        assert rec.extra["dt"] == want.seconds[action]
        # the recorded surprise is the model's for that many seconds, and only for that many
        frame = decode_image(store.read_bytes(before.path), before.frame_id)
        states: list[torch.Tensor] = []
        observe(tiny_wm, frame, [before.pose.to_pose().as_tuple()], ranges, spec, states_out=states)
        pose_from, pose_to = [before.pose.to_pose().as_tuple()], [rec.pose.to_pose().as_tuple()]
        _, surprise = tiny_wm.predict(states[0], pose_from, pose_to, ranges, dt=rec.extra["dt"])
        _, other = tiny_wm.predict(states[0], pose_from, pose_to, ranges, dt=rec.extra["dt"] + 0.1)
        assert rec.extra["predicted_surprise"] == pytest.approx(float(surprise[0]), abs=2e-6)
        assert not np.isclose(float(other[0]), float(surprise[0]), rtol=0, atol=1e-4)

