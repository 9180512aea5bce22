"""Moving due jobs (rq retries with an interval, `enqueue_in`) from their queue's scheduled registry
onto the queue, without rq's forked scheduler process.

rq's scheduler runs in a child process forked by one worker and holds a per-queue lock for a
minute past its interval; when that worker dies the lock outlives it and the retries it would have
enqueued wait for minutes. Here every worker, and the coordinator's housekeeping as a backstop,
moves its queues' due jobs about once a second under a short per-queue lock (a few seconds, held
only while moving), so due jobs move as long as any one of them runs.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.utils import current_timestamp

from shared.keys import Keys
from shared.queues import SERIALIZER, job_queue

log = logging.getLogger(__name__)

LOCK_MS = 3000
INTERVAL_S = 1.0
_CHUNK = 200

# Delete the lock only if it still holds our token: a lock that expired and was taken by another
# mover is left alone.
_RELEASE = ("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) "
            "end return 0")


def _move_one(client: redis.Redis, queue: Queue, registry: ScheduledJobRegistry, job_id: str) -> bool:
    """Move one due job onto its queue (True), or drop the registry entry of a job that is gone."""
    try:
        job: Job | None = Job.fetch(job_id, connection=client, serializer=SERIALIZER)
    except NoSuchJobError:
        job = None
    except Exception as exc:
        # An unreadable record: queued all the same, so that the worker refuses it with a reason.
        log.warning("scheduled job %s has an unreadable record (%s); queueing it to be refused",
                    job_id, exc)
        with client.pipeline() as pipe:
            pipe.rpush(queue.key, job_id)
            registry.remove(job_id, pipeline=pipe)
            pipe.execute()
        return True
    # One transaction per job: onto the queue and out of the registry together.
    with client.pipeline() as pipe:
        if job is None:
            registry.remove(job_id, pipeline=pipe)
        elif job.has_rate_limit:
            registry.remove(job.id, pipeline=pipe)
            queue._enqueue_rate_limited_job(job, pipeline=pipe, at_front=job.should_enqueue_at_front())
        else:
            queue._enqueue_job(job, pipeline=pipe, at_front=job.should_enqueue_at_front())
            registry.remove(job.id, pipeline=pipe)
        pipe.execute()
    return job is not None


def move_due_jobs(client: redis.Redis, keys: Keys, queue_name: str) -> int:
    """Move the due jobs of the queue `queue_name` (a full name) onto it, under its lock; the
    number moved (0 when another mover holds the lock)."""
    lock, token = keys.due_jobs_lock(queue_name), uuid.uuid4().hex
    if not client.set(lock, token, nx=True, px=LOCK_MS):
        return 0
    started = time.monotonic()
    try:
        queue = job_queue(queue_name, client)
        registry = ScheduledJobRegistry(queue=queue)
        moved = 0
        for job_id in registry.get_jobs_to_schedule(current_timestamp(), chunk_size=_CHUNK):
            if time.monotonic() - started > LOCK_MS / 2000:
                break  # stay well inside the lock: the rest moves on the next round
            moved += _move_one(client, queue, registry, job_id)
        if moved:
            log.info("moved %d due job(s) onto %s", moved, queue_name)
        return moved
    finally:
        client.register_script(_RELEASE)(keys=[lock], args=[token])


class DueJobMover:
    """A daemon thread moving the due jobs of `queue_names` about every `interval_s`."""

    def __init__(self, client: redis.Redis, keys: Keys, queue_names: list[str],
                 interval_s: float = INTERVAL_S):
        self.client, self.keys, self.queue_names = client, keys, list(queue_names)
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="due-jobs", daemon=True)
        self._failing = False

    def start(self) -> DueJobMover:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2 * self.interval_s + LOCK_MS / 1000)

    def run_once(self) -> int:
        moved = 0
        for name in self.queue_names:
            moved += move_due_jobs(self.client, self.keys, name)
        return moved

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.run_once()
                if self._failing:
                    log.info("moving due jobs again")
                self._failing = False
            except redis.RedisError as exc:
                if not self._failing:  # once per outage, not every second
                    log.warning("cannot move due jobs, Redis unavailable: %s", exc)
                self._failing = True
            except Exception:
                log.exception("moving due jobs failed")
