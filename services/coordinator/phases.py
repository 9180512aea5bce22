"""Which job function runs each phase, on which queue (by import path: services share no code).

The coordinator enqueues jobs by their dotted path, so it never imports another service's package;
the worker that owns the queue imports the function when it runs the job.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    name: str
    queue: str
    func: str


PHASES: dict[str, Phase] = {
    "collect": Phase("collect", "camera", "services.camera.jobs.collect_sweep"),
}
