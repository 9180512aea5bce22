"""train_world_model run inline against a real Redis and a store filled by a real sweep."""

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest
import yaml

from services.camera.app import create_app
from services.camera.jobs import collect_sweep
from services.worldmodel.jobs import train_world_model
from shared import events, versions
from shared.config import child_environment
from shared.keys import Keys
from shared.leases import LeaseLost, LeaseManager, NoFreeSlot
from shared.models.checkpoint import model_from_bytes
from shared.redis import connect
from shared.store import CorruptFile, Store
from tests.support.servers import ThreadedServer
from tests.support.settings import make_settings

TINY = {
    "model": {"encoder": {"img_size": 32, "patch_size": 8, "dim": 32, "depth": 1, "heads": 2},
              "predictor": {"dim": 32, "depth": 1, "heads": 2}, "surprise": {"hidden": 16}},
    "train": {"epochs": 2, "window_len": 3, "windows_per_batch": 2, "rollout_horizon": 1},
    "lease_wait_s": 0.5,
}


def _use(settings, tmp_path, monkeypatch):
    for key, value in child_environment(settings, tmp_path / "run").items():
        if key.startswith("PTZJEPA_"):
            monkeypatch.setenv(key, value)


def swept_node(tmp_path, redis_url, monkeypatch, worldmodel: dict):
    """Settings of a node whose store holds one real sweep (2 rounds x 5 frames)."""
    settings = make_settings(tmp_path, redis_url, worldmodel=worldmodel,
                             camera={"sim": {"width": 48, "height": 48}})
    _use(settings, tmp_path, monkeypatch)
    with ThreadedServer(create_app(settings), port=settings.services.camera_port):
        collect_sweep(iterations=2, movements=4, seed=1)
    return settings


@pytest.fixture
def node(tmp_path, redis_url, monkeypatch):
    return swept_node(tmp_path, redis_url, monkeypatch, TINY)


def test_training_publishes_a_verified_version_and_resumes_from_it(node):
    first = train_world_model()
    assert first["slot"] in ("wm_00", "wm_01") and first["parent"] is None
    assert first["frames"] == 20 and first["epochs"] == 2
    store = Store(node.resolved_store_url())
    share = versions.read_share(store, first["slot"], first["version"])
    assert hashlib.sha256(share).hexdigest() == first["version"]
    model = model_from_bytes(share)
    assert model.cfg.encoder.dim == 32

    second = train_world_model(slot=first["slot"])
    assert second["parent"]["version"] == first["version"]
    assert second["fence"] > first["fence"]
    chain = versions.history(store, first["slot"], second["version"])
    assert [m["version"] for m in chain] == [second["version"], first["version"]]
    assert chain[0]["lineage_epochs"] == 4
    client = connect(node.redis_url)
    kinds = [e.kind for e in events.read_since(client, Keys("test"))]
    assert kinds.count("model.published") == 2
    holders = LeaseManager(client, Keys("test"), "x").holders(["wm_00", "wm_01"])
    assert holders == {"wm_00": None, "wm_01": None}


def test_a_tampered_version_is_refused_on_resume(node):
    first = train_world_model(slot="wm_00")
    store = Store(node.resolved_store_url())
    path = store.full(versions.VersionFiles("wm_00", first["version"]).resume)
    with open(path, "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(CorruptFile, match="does not match"):
        train_world_model(slot="wm_00")


def test_busy_slots_fail_after_a_bounded_wait(node):
    client = connect(node.redis_url)
    other = LeaseManager(client, Keys("test"), "other-node")
    held = [other.acquire(s, ttl_ms=10_000) for s in ("wm_00", "wm_01")]
    try:
        with pytest.raises(NoFreeSlot, match="other-node"):
            train_world_model()
    finally:
        for lease in held:
            lease.release()


def test_no_frames_is_a_clear_error(tmp_path, redis_url, monkeypatch):
    settings = make_settings(tmp_path, redis_url, worldmodel=TINY)
    _use(settings, tmp_path, monkeypatch)
    from shared.frames import NoFrames
    with pytest.raises(NoFrames, match="run a collection"):
        train_world_model()


def test_a_holder_that_loses_its_lease_stops_and_publishes_nothing(node):
    client = connect(node.redis_url)
    keys = Keys("test")
    # a long run, so that the lease is taken away in the middle of it
    config = Path(os.environ["PTZJEPA_CONFIG"])
    data = yaml.safe_load(config.read_text())
    data["worldmodel"]["train"]["steps"] = 100_000
    data["worldmodel"]["train"].pop("epochs")
    data["worldmodel"]["train"]["time_budget_s"] = 60
    config.write_text(yaml.safe_dump(data))
    outcome = {}

    def run():
        try:
            outcome["result"] = train_world_model(slot="wm_00")
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while not client.exists(keys.slot_lease("wm_00")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    # the lease expires and another holder takes the slot (what a long Redis outage looks like)
    client.set(keys.slot_lease("wm_00"), '{"token": "someone-else", "node": "other"}')
    thread.join(60)
    assert isinstance(outcome.get("error"), LeaseLost), outcome
    assert LeaseManager(client, keys, "x").latest("wm_00") is None
    assert Store(node.resolved_store_url()).list("models") == []
