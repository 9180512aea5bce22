"""Progress and stop requests for long-running jobs.

A job reports `done/total` into its rq job meta (read by the coordinator's `GET /v1/jobs/{id}`),
into a Prometheus gauge, and as start/finish events on the event stream. A stop request is a Redis
key the job polls between units of work, so every phase ends on request without being killed.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
from rq import get_current_job

from shared import events
from shared.keys import Keys
from shared.metrics import PHASE_PROGRESS, PHASE_SECONDS


class StopRequested(RuntimeError):
    """The job was asked to stop; what it finished so far is kept."""


_SHUTTING_DOWN = threading.Event()


def request_shutdown() -> None:
    """This worker process is stopping: from now on every job's `stop_requested()` is true, so
    the running job ends at its next poll, keeping what it finished, and the worker can exit
    within the launcher's grace period instead of being killed."""
    _SHUTTING_DOWN.set()


class JobProgress:
    def __init__(self, client: redis.Redis, keys: Keys, node: str, phase: str, total: int):
        self.client, self.keys, self.node, self.phase = client, keys, node, phase
        self.total = max(int(total), 1)
        self.done = 0
        self.started = time.time()
        self.job = get_current_job()
        self.job_id = self.job.id if self.job else None
        events.emit(client, keys, "phase.started", node, phase=phase, job_id=self.job_id, total=total)
        self._write({})

    def update(self, done: int, **info: Any) -> None:
        self.done = done
        self._write(info)

    def _write(self, info: dict[str, Any]) -> None:
        PHASE_PROGRESS.labels(self.node, self.phase).set(self.done / self.total)
        if self.job is not None:
            self.job.meta["progress"] = {"phase": self.phase, "done": self.done, "total": self.total,
                                         "elapsed_s": round(time.time() - self.started, 3), **info}
            self.job.save_meta()

    def stop_requested(self) -> bool:
        if _SHUTTING_DOWN.is_set():
            return True
        return bool(self.job_id and self.client.exists(self.keys.stop_request(self.job_id)))

    def check_stop(self) -> None:
        if self.stop_requested():
            why = "because its worker is shutting down" if _SHUTTING_DOWN.is_set() else "on request"
            raise StopRequested(f"{self.phase} stopped {why} after {self.done}/{self.total}")

    def frame_done(self, done: int, _total: int) -> None:
        """The `on_frame` callback of a camera run: records progress and stops when asked to."""
        self.update(done)
        self.check_stop()

    def finish(self, outcome: str = "ok", **result: Any) -> None:
        elapsed = time.time() - self.started
        PHASE_SECONDS.labels(self.node, self.phase, outcome).observe(elapsed)
        events.emit(self.client, self.keys, "phase.finished", self.node, phase=self.phase,
                    job_id=self.job_id, outcome=outcome, elapsed_s=round(elapsed, 3), **result)


def request_stop(client: redis.Redis, keys: Keys, job_id: str, ttl_s: int = 86_400) -> None:
    client.set(keys.stop_request(job_id), "1", ex=ttl_s)
