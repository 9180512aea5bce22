"""The coordinator's housekeeping thread: find jobs whose worker died, so none stays "started".

rq workers clean their own queues' registries, but a queue whose only worker was killed has no
one to do it until that worker is restarted. Every few heartbeats the coordinator runs rq's
abandoned-job cleanup on its node's queues and the shared ones: an abandoned job is retried (the
failure was transient: its worker died) or failed with its reason, and its cycle follows. A short
Redis lock per queue keeps two coordinators from handling the same job twice.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from rq.registry import StartedJobRegistry
from rq.timeouts import TimerDeathPenalty

from shared.config import Settings
from shared.due_jobs import move_due_jobs
from shared.keys import NODE_QUEUES, QUEUE_NAMES, Keys
from shared.queues import job_queue

log = logging.getLogger(__name__)


def sweep_abandoned(client: redis.Redis, settings: Settings) -> None:
    keys = Keys(settings.redis_prefix)
    interval = settings.services.job_heartbeat_s
    for name in QUEUE_NAMES:
        queue_name = keys.queue(name, settings.node if name in NODE_QUEUES else None)
        if not client.set(keys.maintenance_lock(queue_name), settings.node, nx=True,
                          ex=max(1, 2 * interval)):
            continue  # another coordinator did it moments ago
        # TimerDeathPenalty: the failure callbacks run under a time limit, and signals (rq's
        # default) only work in the main thread, not in this housekeeping thread.
        registry = StartedJobRegistry(queue=job_queue(queue_name, client),
                                      death_penalty_class=TimerDeathPenalty)
        registry.cleanup()


def move_all_due_jobs(client: redis.Redis, settings: Settings) -> None:
    """The backstop of the workers' due-job threads (same function, same locks)."""
    keys = Keys(settings.redis_prefix)
    for name in QUEUE_NAMES:
        move_due_jobs(client, keys, keys.queue(name, settings.node if name in NODE_QUEUES else None))


class Housekeeper:
    def __init__(self, client: redis.Redis, settings: Settings):
        self.client, self.settings = client, settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="housekeeper", daemon=True)

    def start(self) -> Housekeeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        sweep_every = 2 * self.settings.services.job_heartbeat_s
        last_sweep = 0.0
        while not self._stop.wait(1.0):
            try:
                move_all_due_jobs(self.client, self.settings)
                if time.monotonic() - last_sweep >= sweep_every:
                    last_sweep = time.monotonic()
                    sweep_abandoned(self.client, self.settings)
            except redis.RedisError as exc:
                log.warning("housekeeping skipped, Redis unavailable: %s", exc)
            except Exception:
                log.exception("housekeeping failed")
