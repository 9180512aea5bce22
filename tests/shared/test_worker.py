"""The worker against a real Redis: jobs that are not JSON are refused, due jobs are moved."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import redis
from rq import Queue
from rq.registry import FailedJobRegistry
from rq.serializers import DefaultSerializer

from shared.cycles import get_cycle
from shared.due_jobs import move_due_jobs
from shared.keys import Keys
from shared.queues import job_queue
from shared.worker import run_worker
from tests.support.redis_server import RestartableRedis
from tests.support.settings import make_settings


def write_marker(path: str) -> str:
    Path(path).write_text("ran")
    return path


def test_a_pickled_job_is_refused_and_the_worker_goes_on(tmp_path):
    with RestartableRedis(tmp_path / "redis") as server:
        _refused(tmp_path, server.url, redis.Redis.from_url(server.url))


def _refused(tmp_path, redis_url, redis_client):
    settings = make_settings(tmp_path, redis_url)
    name = Keys(settings.redis_prefix).queue("worldmodel")
    pickled = Queue(name, connection=redis_client, serializer=DefaultSerializer)
    bad = pickled.enqueue(write_marker, str(tmp_path / "pickled"))
    good = job_queue(name, redis_client).enqueue(write_marker, str(tmp_path / "json"))
    run_worker(settings, ["worldmodel"], burst=True, metrics_port=0)
    assert not (tmp_path / "pickled").exists()
    assert bad.id in FailedJobRegistry(queue=job_queue(name, redis_client)).get_job_ids()
    assert (tmp_path / "json").read_text() == "ran"  # the worker did not crash on the bad one
    good.refresh()
    assert good.get_status() == "finished"


def test_a_refused_job_of_a_cycle_ends_the_cycle_failed_with_the_reason(tmp_path):
    with RestartableRedis(tmp_path / "redis") as server:
        client = redis.Redis.from_url(server.url)
        settings = make_settings(tmp_path, server.url)
        keys = Keys(settings.redis_prefix)
        cycle_id = "cycle-20261207T000000-abcdef"
        job_id = f"{cycle_id}-worldmodel"
        client.hset(keys.cycle(cycle_id), mapping={
            "id": cycle_id, "node": settings.node, "status": "running", "lifelong": 0, "created_at": 0,
            "phases": json.dumps([{"name": "worldmodel", "job_id": job_id, "queue": "worldmodel"}])})
        pickled = Queue(keys.queue("worldmodel"), connection=client, serializer=DefaultSerializer)
        pickled.enqueue(write_marker, str(tmp_path / "pickled"), job_id=job_id)
        run_worker(settings, ["worldmodel"], burst=True, metrics_port=0)
        assert not (tmp_path / "pickled").exists()
        view = get_cycle(client, keys, cycle_id)
        assert view["status"] == "failed"
        assert "worldmodel failed" in view["reason"] and "JSON" in view["reason"], view["reason"]


def test_due_jobs_are_moved_onto_their_queue(tmp_path):
    with RestartableRedis(tmp_path / "redis") as server:
        _moved(tmp_path, server.url, redis.Redis.from_url(server.url))


def _moved(tmp_path, redis_url, redis_client):
    settings = make_settings(tmp_path, redis_url)
    keys = Keys(settings.redis_prefix)
    queue = job_queue(keys.queue("worldmodel"), redis_client)
    job = queue.enqueue_in(timedelta(seconds=0), write_marker, str(tmp_path / "due"))
    assert queue.scheduled_job_registry.get_job_ids() == [job.id]
    assert move_due_jobs(redis_client, keys, queue.name) == 1
    assert queue.get_job_ids() == [job.id] and not queue.scheduled_job_registry.get_job_ids()
    assert not redis_client.exists(keys.due_jobs_lock(queue.name))  # released
