"""The camera service and the collection phase behave the same whichever camera is behind them:
the sim, or an emulated Hanwha, Axis or ONVIF camera reached over HTTP with digest auth.

Agent navigation through each emulated camera, from the coordinator API, is in test_end_to_end.py.
"""

from __future__ import annotations

import pathlib

import httpx
import pytest

from services.camera.app import create_app
from services.camera.jobs import collect_sweep
from services.coordinator.launcher import Node
from shared.config import ConfigError, child_environment
from shared.store import Store, decode_image
from tests.camera.drivers.conftest import PASSWORD, USER
from tests.support.servers import ThreadedServer, wait_for
from tests.support.settings import make_settings


def camera_settings(protocol: str, emulators) -> dict:
    """What a user writes for a real camera (the password comes through the environment).

    Every camera gets the default pan frame 0..360 here, although the emulated Axis camera works
    in -180..180: the driver maps frames, so clients see the same numbers whatever the camera.
    """
    if protocol == "sim":
        return {}
    return {"driver": protocol, "host": "127.0.0.1", "port": emulators[protocol].port, "user": USER,
            "password": PASSWORD, "timeout_s": 2.0}


@pytest.fixture(params=["sim", "hanwha", "axis", "onvif"])
def service(request, tmp_path, emulators):
    if request.param != "sim":
        emulators[request.param].reset()
    settings = make_settings(tmp_path, api_token="tok", camera=camera_settings(request.param, emulators))
    with ThreadedServer(create_app(settings)) as server:
        with httpx.Client(base_url=server.url, timeout=20, headers={"Authorization": "Bearer tok"}) as http:
            yield request.param, http


def test_move_behaves_the_same_whichever_driver(service):
    driver, http = service
    info = http.get("/v1/info").json()
    assert info["driver"] == driver and http.get("/readyz").status_code == 200
    r = http.post("/v1/move", json={"mode": "absolute", "pan": 350, "tilt": 10, "zoom": 2})
    assert r.status_code == 200
    pose = r.json()
    assert pose["pan"] == pytest.approx(350, abs=0.01) and pose["tilt"] == pytest.approx(10, abs=0.01)
    assert pose["zoom"] == pytest.approx(2, abs=0.001)
    r = http.post("/v1/move", json={"mode": "relative", "pan": 20, "tilt": 50, "zoom": 0})
    assert r.status_code == 200
    assert r.json()["pan"] == pytest.approx(10, abs=0.01) and r.json()["tilt"] == 30  # wrapped, clamped
    assert http.get("/v1/position").json()["pan"] == pytest.approx(10, abs=0.01)
    r = http.post("/v1/move", json={"mode": "absolute", "pan": 10, "tilt": 200, "zoom": 1})
    assert r.status_code == 422 and "tilt 200" in r.json()["detail"]
    snap = http.get("/v1/snapshot")
    assert snap.headers["content-type"] == "image/jpeg"
    assert decode_image(snap.content, "snapshot").shape == (96, 96, 3)
    assert float(snap.headers["x-ptz-pan"]) == pytest.approx(10, abs=0.01)


def test_camera_faults_become_502_or_504_through_the_service(tmp_path, emulators):
    emu = emulators["axis"]
    emu.reset()
    settings = make_settings(tmp_path, camera=camera_settings("axis", emulators) | {"timeout_s": 0.25})
    with ThreadedServer(create_app(settings)) as server:
        emu.app.faults.inject("error_body", "snapshot", times=100)
        r = httpx.get(f"{server.url}/v1/snapshot", timeout=20)
        assert r.status_code == 502 and "Driver is initiating" in r.json()["detail"]
        emu.app.faults.clear()
        emu.app.faults.inject("timeout", "position", times=100)
        r = httpx.get(f"{server.url}/v1/position", timeout=20)
        assert r.status_code == 504 and "no answer" in r.json()["detail"]
        assert PASSWORD not in r.text
    emu.reset()


def test_a_real_driver_without_a_password_refuses_to_start(tmp_path):
    settings = make_settings(tmp_path, camera={"driver": "onvif", "port": 9})
    with pytest.raises(ConfigError, match="PTZJEPA_CAMERA__PASSWORD"):
        create_app(settings)


@pytest.mark.parametrize("protocol", ["hanwha", "axis", "onvif"])
def test_a_sweep_runs_through_each_emulated_camera(protocol, tmp_path, redis_url, monkeypatch, emulators):
    emulators[protocol].reset()
    settings = make_settings(tmp_path, redis_url, camera=camera_settings(protocol, emulators))
    for key, value in child_environment(settings, tmp_path / "run").items():
        if key.startswith("PTZJEPA_"):
            monkeypatch.setenv(key, value)
    with ThreadedServer(create_app(settings), port=settings.services.camera_port):
        result = collect_sweep(iterations=2, movements=3, seed=5)
    store = Store(settings.resolved_store_url())
    assert result["frames"] == 16 and result["rounds"] == 2 and not result["stopped"]
    records = [r for m in result["manifests"] for r in store.read_manifest(m)]
    assert [r.step for r in records] == list(range(8)) * 2  # each view and its hold frame
    ranges = settings.camera.ranges()
    assert all(ranges.check(r.pose.to_pose()) == [] for r in records)
    assert all(r.dynamic_fraction is None for r in records)  # no simulator ground truth from a camera
    for r in records:
        assert store.read_image(r.path).shape == (96, 96, 3)
    assert PASSWORD not in (tmp_path / "run" / "settings.yaml").read_text()


@pytest.mark.integration
def test_collect_phase_through_the_coordinator_and_a_worker_with_an_axis_camera(tmp_path, emulators):
    emulators["axis"].reset()
    settings = make_settings(tmp_path, api_token="tok", camera=camera_settings("axis", emulators))
    with Node(settings) as node:
        with httpx.Client(base_url=node.coordinator_url, timeout=10,
                          headers={"Authorization": "Bearer tok"}) as http:
            r = http.post("/v1/phases/collect", json={"iterations": 2, "movements": 2, "seed": 3})
            assert r.status_code == 202
            job_id = r.json()["job_id"]
            view = wait_for(lambda: (v := http.get(f"/v1/jobs/{job_id}").json())["status"] in
                            ("finished", "failed", "stopped", "canceled") and v, 120, 0.2, f"job {job_id}")
        assert view["status"] == "finished", view
        metrics = httpx.get(f"{node.camera_url}/metrics").text
        assert 'driver="axis",op="snapshot",outcome="ok"} 12.0' in metrics
    assert view["result"]["frames"] == 12
    store = Store(settings.resolved_store_url())
    assert len(store.list("frames/node0", ".jpg")) == 12
    logs = [p.read_text(errors="replace") for p in pathlib.Path(settings.data_dir).rglob("*.log")]
    logs += [p.read_text() for p in pathlib.Path(settings.data_dir).rglob("*.yaml")]
    assert logs and not [text for text in logs if PASSWORD in text]
