"""Which job function runs each phase, on which queue, by import path.

Enqueuers (the coordinator, cycle callbacks in workers) name job functions by their dotted path,
so no service imports another service's package; the worker that owns the queue imports the
function when it runs the job.
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
    "navigate": Phase("navigate", "agent", "services.agent.jobs.navigate"),
    "worldmodel": Phase("worldmodel", "worldmodel", "services.worldmodel.jobs.train_world_model"),
    "dreamer": Phase("dreamer", "dreamer", "services.dreamer.jobs.generate_dreams"),
    "agent": Phase("agent", "agent", "services.agent.jobs.train_agent"),
}
