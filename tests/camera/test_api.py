"""The camera service over real HTTP (uvicorn on loopback) with the simulated camera."""

import json

import httpx
import pytest

from services.camera.app import create_app
from shared.scene import ZONE_KINDS
from shared.store import decode_image
from tests.support.servers import ThreadedServer
from tests.support.settings import make_settings


@pytest.fixture(scope="module")
def camera(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("cam"), api_token="tok-123")
    with ThreadedServer(create_app(settings)) as server:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            yield http


AUTH = {"Authorization": "Bearer tok-123"}


def test_info_position_and_health(camera):
    info = camera.get("/v1/info").json()
    assert info["driver"] == "sim" and info["ranges"]["tilt_max"] == 30
    assert set(camera.get("/v1/position").json()) == {"pan", "tilt", "zoom"}
    assert camera.get("/healthz").json()["status"] == "ok"
    assert camera.get("/readyz").status_code == 200
    metrics = camera.get("/metrics").text
    assert "ptzjepa_http_requests_total" in metrics


def test_absolute_and_relative_moves(camera):
    r = camera.post("/v1/move", json={"mode": "absolute", "pan": 350, "tilt": 10, "zoom": 2}, headers=AUTH)
    assert r.status_code == 200 and r.json() == {"pan": 350, "tilt": 10, "zoom": 2}
    r = camera.post("/v1/move", json={"mode": "relative", "pan": 20, "tilt": 50, "zoom": 0}, headers=AUTH)
    assert r.status_code == 200
    assert r.json()["pan"] == pytest.approx(10) and r.json()["tilt"] == 30  # wrapped, clamped
    assert camera.get("/v1/position").json()["pan"] == pytest.approx(10)


def test_snapshot_is_a_jpeg_with_the_pose_in_headers(camera):
    camera.post("/v1/move", json={"mode": "absolute", "pan": 90, "tilt": 0, "zoom": 1}, headers=AUTH)
    r = camera.get("/v1/snapshot")
    assert r.headers["content-type"] == "image/jpeg"
    assert float(r.headers["x-ptz-pan"]) == 90 and float(r.headers["x-ptz-zoom"]) == 1
    assert 0 <= float(r.headers["x-ptz-dynamic-fraction"]) <= 1
    kinds = json.loads(r.headers["x-ptz-kind-fractions"])
    assert set(kinds) == set(ZONE_KINDS) and sum(kinds.values()) == pytest.approx(1.0)
    assert decode_image(r.content, "snapshot").shape == (96, 96, 3)


@pytest.mark.parametrize("body, fragment", [
    ({"mode": "absolute", "pan": 10, "tilt": 200, "zoom": 1}, "tilt 200"),
    ({"mode": "absolute", "pan": 400, "tilt": 0, "zoom": 1}, "pan 400"),
    ({"mode": "absolute", "pan": 0, "tilt": 0, "zoom": 0}, "zoom 0"),
    ({"mode": "relative", "pan": 0, "tilt": 0, "zoom": 500}, "relative zoom"),
    ({"mode": "sideways", "pan": 0}, "mode"),
    ({"mode": "absolute", "pan": "left"}, "pan"),
    ({"mode": "absolute", "pan": 1, "speed": 3}, "speed"),
    ({"pan": 1}, "mode"),
    ([1, 2], "body"),
])
def test_bad_moves_get_422_with_a_reason_and_change_nothing(camera, body, fragment):
    before = camera.get("/v1/position").json()
    r = camera.post("/v1/move", json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    assert fragment in r.json()["detail"]
    assert camera.get("/v1/position").json() == before


def test_malformed_json_and_non_finite_numbers(camera):
    r = camera.post("/v1/move", content=b"{not json", headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"]
    r = camera.post("/v1/move", content=b'{"mode": "absolute", "pan": NaN, "tilt": 0, "zoom": 1}',
                    headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 422


def test_moves_need_the_token(camera):
    body = {"mode": "absolute", "pan": 0, "tilt": 0, "zoom": 1}
    assert camera.post("/v1/move", json=body).status_code == 401
    r = camera.post("/v1/move", json=body, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 403
    assert "tok-123" not in r.text


def test_unknown_routes_and_methods_are_4xx(camera):
    assert camera.get("/v1/nope").status_code == 404
    assert camera.delete("/v1/move", headers=AUTH).status_code == 405
    assert camera.post("/v1/snapshot").status_code == 405


def test_camera_faults_become_502_or_504(tmp_path):
    settings = make_settings(tmp_path, camera={"sim": {"fault_rate": 1.0, "fault_kinds": ["error_body"]}})
    with ThreadedServer(create_app(settings)) as server:
        r = httpx.get(f"{server.url}/v1/snapshot", timeout=10)
        assert r.status_code == 502 and "Driver is initiating" in r.json()["detail"]
        assert httpx.get(f"{server.url}/v1/position", timeout=10).status_code == 502
    settings = make_settings(tmp_path, camera={"sim": {"fault_rate": 1.0, "fault_kinds": ["timeout"]}})
    with ThreadedServer(create_app(settings)) as server:
        r = httpx.post(f"{server.url}/v1/move", json={"mode": "absolute", "pan": 1, "tilt": 0, "zoom": 1},
                       timeout=10)
        assert r.status_code == 504 and "timed out" in r.json()["detail"]
