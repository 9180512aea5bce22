"""What every job function starts with: its settings (for the node it works for), its rq job,
the Redis connection the job came on, and the keys; plus the result of the phase before it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from rq import get_current_job
from rq.job import Job

from shared.config import Settings, load_settings
from shared.keys import Keys
from shared.redis import client_for


@dataclass
class JobContext:
    settings: Settings
    job: Job | None  # None when the function runs inline (tests, scripts)
    client: redis.Redis
    keys: Keys

    def upstream_result(self) -> Any:
        """The result of the job this one depends on (the previous phase of its cycle), if any."""
        dependency = self.job.dependency if self.job is not None else None
        return dependency.return_value() if dependency is not None else None


def job_context(node: str | None = None) -> JobContext:
    settings = load_settings()
    if node is not None and node != settings.node:
        # shared workers (world model, dreamer) serve many nodes: the job names its node
        settings = settings.model_copy(update={"node": node})
    job = get_current_job()
    client = job.connection if job else client_for(settings)
    return JobContext(settings, job, client, Keys(settings.redis_prefix))
