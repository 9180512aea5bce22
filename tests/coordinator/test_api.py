"""Coordinator REST API over real HTTP with a real Redis (jobs are only enqueued here)."""

import httpx
import pytest

from services.coordinator.app import create_app
from shared.keys import Keys
from shared.queues import job_queue
from shared.redis import connect
from tests.support.servers import ThreadedServer
from tests.support.settings import make_settings

AUTH = {"Authorization": "Bearer tok"}


@pytest.fixture
def coordinator(tmp_path, redis_url):
    settings = make_settings(tmp_path, redis_url, api_token="tok")
    with ThreadedServer(create_app(settings)) as server:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            yield http, connect(redis_url)


def test_collect_enqueues_a_sweep_on_the_camera_queue(coordinator):
    http, redis_client = coordinator
    r = http.post("/v1/phases/collect", json={"iterations": 2, "movements": 1, "seed": 3}, headers=AUTH)
    assert r.status_code == 202
    job_id = r.json()["job_id"]
    queue = job_queue(Keys("test").queue("camera", "node0"), redis_client)
    assert queue.job_ids == [job_id]
    job = queue.fetch_job(job_id)
    assert job.func_name == "services.camera.jobs.collect_sweep"
    assert job.kwargs == {"iterations": 2, "movements": 1, "seed": 3}
    view = http.get(f"/v1/jobs/{job_id}").json()
    assert view["status"] == "queued" and view["func"] == "services.camera.jobs.collect_sweep"


def test_collect_with_no_body_uses_config_defaults(coordinator):
    http, _ = coordinator
    r = http.post("/v1/phases/collect", headers=AUTH)
    assert r.status_code == 202


@pytest.mark.parametrize("body, fragment", [
    ({"iterations": 0}, "iterations"),
    ({"iterations": "many"}, "iterations"),
    ({"movements": -1}, "movements"),
    ({"seed": -5}, "seed"),
    ({"iterations": 2, "turbo": True}, "turbo"),
    ([1], "body"),
])
def test_bad_collect_requests_get_422_and_enqueue_nothing(coordinator, body, fragment):
    http, redis_client = coordinator
    r = http.post("/v1/phases/collect", json=body, headers=AUTH)
    assert r.status_code == 422 and fragment in r.json()["detail"]
    assert job_queue(Keys("test").queue("camera", "node0"), redis_client).count == 0


def test_malformed_json_is_422(coordinator):
    http, _ = coordinator
    r = http.post("/v1/phases/collect", content=b"{", headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 422


def test_mutations_need_the_token(coordinator):
    http, redis_client = coordinator
    assert http.post("/v1/phases/collect", json={}).status_code == 401
    assert http.post("/v1/phases/collect", json={}, headers={"Authorization": "Bearer no"}).status_code == 403
    assert http.post("/v1/jobs/abc/stop").status_code == 401
    assert job_queue(Keys("test").queue("camera", "node0"), redis_client).count == 0


def test_unknown_and_invalid_job_ids(coordinator):
    http, _ = coordinator
    r = http.get("/v1/jobs/does-not-exist")
    assert r.status_code == 404 and "no job" in r.json()["detail"]
    r = http.get("/v1/jobs/bad%20id%21")
    assert r.status_code == 422 and "not a valid job id" in r.json()["detail"]
    assert http.post("/v1/jobs/does-not-exist/stop", headers=AUTH).status_code == 404


def test_events_query_is_validated(coordinator):
    http, _ = coordinator
    assert http.get("/v1/events").json() == []
    assert http.get("/v1/events", params={"since": "yesterday"}).status_code == 422
    assert http.get("/v1/events", params={"count": 0}).status_code == 422


def test_health_ready_metrics(coordinator):
    http, _ = coordinator
    assert http.get("/healthz").status_code == 200
    assert http.get("/readyz").json()["status"] == "ready"
    assert "ptzjepa_http_requests_total" in http.get("/metrics").text


def test_worldmodel_phase_is_enqueued_and_validated(coordinator):
    http, redis_client = coordinator
    r = http.post("/v1/phases/worldmodel", json={"slot": "wm_01"}, headers=AUTH)
    assert r.status_code == 202
    job = job_queue(Keys("test").queue("worldmodel"), redis_client).fetch_job(r.json()["job_id"])
    assert job.func_name == "services.worldmodel.jobs.train_world_model"
    assert job.kwargs == {"node": "node0", "slot": "wm_01"}
    r = http.post("/v1/phases/worldmodel", json={"slot": "wm_99"}, headers=AUTH)
    assert r.status_code == 422 and "unknown slot" in r.json()["detail"]
    r = http.post("/v1/phases/worldmodel", json={"slot": "../x"}, headers=AUTH)
    assert r.status_code == 422
    assert http.post("/v1/phases/worldmodel", json={}).status_code == 401
