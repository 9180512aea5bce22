"""A real two-cycle simulated run, made once per test session and shared by the report, export
and status-page tests.

Two cycles are started exactly as `POST /v1/cycles` starts them (`shared.cycles.start_cycle`: a
cycle record in Redis, then the phases as chained rq jobs with callbacks) and executed by a real rq
worker in this process (`SimpleWorker`, burst mode), against the simulated camera service on
loopback. The models are tiny (TINY from test_full_cycle), so both cycles take seconds.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from rq import SimpleWorker

from shared import cycles
from shared.config import Settings, child_environment
from shared.keys import QUEUE_NAMES, Keys
from shared.queues import SERIALIZER, job_queue
from shared.redis import connect
from shared.store import Store
from tests.coordinator.test_full_cycle import TINY
from tests.support.servers import ThreadedServer
from tests.support.settings import make_settings

PREFIX = "report"
_RUNS: dict[int, TwoCycleRun] = {}


@dataclass
class TwoCycleRun:
    settings: Settings
    env: dict[str, str]  # the PTZJEPA_* variables the jobs ran with
    redis_url: str
    store: Store
    cycle_ids: list[str]


def _worker(client, settings: Settings) -> SimpleWorker:
    keys = Keys(settings.redis_prefix)
    queues = [job_queue(keys.queue(name, settings.node), client) for name in QUEUE_NAMES]
    return SimpleWorker(queues, connection=client, serializer=SERIALIZER)


def two_cycle_run(tmp_path_factory, redis_server) -> TwoCycleRun:
    """The session's run (made on first use): 2 cycles on node0, in Redis db 0 under its own prefix."""
    key = id(redis_server)
    if key in _RUNS:
        return _RUNS[key]
    tmp = tmp_path_factory.mktemp("two-cycles")
    redis_url = redis_server.url_with_password(0)
    client = connect(redis_url)
    for k in client.scan_iter(match=f"{PREFIX}:*"):
        client.delete(k)
    overrides = json.loads(json.dumps(TINY))
    overrides["camera"]["sim"].update({"seed": 0})
    settings = make_settings(tmp, redis_url, **overrides,
                             collect={"iterations": 2, "movements": 4})
    settings = settings.model_copy(update={"redis_prefix": PREFIX})
    env = {k: v for k, v in child_environment(settings, tmp / "run").items() if k.startswith("PTZJEPA_")}
    ids = []
    with pytest.MonkeyPatch.context() as mp:
        for k in [k for k in os.environ if k.startswith("PTZJEPA_")]:
            mp.delenv(k)
        for k, v in env.items():
            mp.setenv(k, v)
        from services.camera.app import create_app

        with ThreadedServer(create_app(settings), port=settings.services.camera_port):
            for expected in ("collect", "navigate"):
                cycle = cycles.start_cycle(client, settings,
                                           overrides={"collect": {"seed": 1}, "navigate": {"seed": 4}})
                assert cycle["phases"][0]["name"] == expected
                _worker(client, settings).work(burst=True, with_scheduler=False)
                view = cycles.get_cycle(client, Keys(PREFIX), cycle["id"])
                assert view["status"] == "finished", json.dumps(view, indent=1, default=str)[:3000]
                ids.append(cycle["id"])
    client.close()
    run = TwoCycleRun(settings=settings, env=env, redis_url=redis_url,
                      store=Store(settings.resolved_store_url()), cycle_ids=ids)
    _RUNS[key] = run
    return run


@pytest.fixture
def two_cycles(tmp_path_factory, redis_server) -> TwoCycleRun:
    return two_cycle_run(tmp_path_factory, redis_server)


def data_dir(run: TwoCycleRun) -> Path:
    return Path(run.settings.data_dir)
