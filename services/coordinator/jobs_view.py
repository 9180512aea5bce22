"""Reading rq jobs for the API: status, progress, result or error, as one plain view."""

from __future__ import annotations

import re

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job

from shared.queues import fetch_job
from shared.schemas import JobView

JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class UnknownJob(LookupError):
    pass


def fetch(client: redis.Redis, job_id: str) -> Job:
    if not JOB_ID.match(job_id):
        raise ValueError(f"'{job_id[:80]}' is not a valid job id (letters, digits, '-' and '_')")
    try:
        return fetch_job(job_id, client)
    except NoSuchJobError:
        raise UnknownJob(f"no job with id '{job_id}' (unknown or expired)") from None


def view(job: Job) -> JobView:
    status = job.get_status(refresh=True)
    status_name = getattr(status, "value", str(status)) if status is not None else "unknown"
    error = None
    if status_name == "failed":
        error = _last_error_line(job)
    result = None
    if status_name == "finished":
        result = job.return_value()
    return JobView(job_id=job.id, func=job.func_name, status=status_name,
                   progress=job.get_meta(refresh=True).get("progress"), result=result, error=error,
                   enqueued_at=job.enqueued_at, started_at=job.started_at, ended_at=job.ended_at)


def _last_error_line(job: Job) -> str:
    """The exception line of the job's traceback: the reason, without the stack."""
    text: str | None = ""
    latest = job.latest_result()
    if latest is not None and getattr(latest, "exc_string", None):
        text = latest.exc_string
    elif getattr(job, "exc_info", None):
        text = job.exc_info
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "failed without an error message"
