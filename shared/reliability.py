"""Which job failures are worth retrying, and the retry policy of every phase job.

rq retries a job a bounded number of times, after growing intervals, when it failed for a
transient reason: Redis went away, the camera timed out or answered 5xx, the worker running it
died (rq's AbandonedJobError), the slot lease was lost. Any other failure (no frames yet, a
corrupt file, a bad configuration) would fail again the same way, so the failure callback turns
its retries off and the failure is final at once, with its reason.
"""

from __future__ import annotations

import httpx
import redis
from rq import Retry
from rq.job import Job

from shared.config import Settings

_TRANSIENT_NAMES = {"AbandonedJobError", "LeaseLost", "CameraTimeout", "RedisUnavailable",
                   "WorkerShutdown"}


def is_transient(typ: type | None, value: BaseException | None) -> bool:
    if value is None and typ is None:
        return False
    if isinstance(value, (redis.ConnectionError, redis.TimeoutError, httpx.TransportError)):
        return True
    name = getattr(typ, "__name__", "") or type(value).__name__
    if name in _TRANSIENT_NAMES:
        return True
    if name == "CameraServiceError":
        status = getattr(value, "status", None)
        return status is None or status in (502, 503, 504)
    return False


def retry_policy(settings: Settings) -> Retry | None:
    n = settings.services.job_retries
    if n <= 0:
        return None
    return Retry(max=n, interval=list(settings.services.retry_intervals_s))


def decide_retry(job: Job, typ, value) -> bool:
    """Called from failure callbacks: True if rq will retry this job. Permanent failures get
    their remaining retries cancelled here (the worker reads `retries_left` right after)."""
    if job.retries_left and is_transient(typ, value):
        return True
    job.retries_left = 0
    return False

