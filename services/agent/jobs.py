"""rq jobs of the agent queue: train the node's agent on dreams; drive the camera with it."""

from __future__ import annotations

import random

from services.agent.navigation import navigate_camera
from services.agent.training_phase import AgentHooks, train_on_dreams
from shared import events
from shared.camera_client import camera_client_for
from shared.jobcontext import job_context
from shared.metrics import AGENT_LOSS
from shared.progress import JobProgress
from shared.queues import json_result
from shared.recording import frames_per_run, run_id
from shared.store import store_for


def train_agent(node: str | None = None, updates: int | None = None) -> dict:
    """Double DQN on the newest dreams (the cycle's, when run in a cycle)."""
    ctx = job_context(node)
    settings, client, keys = ctx.settings, ctx.client, ctx.keys
    if updates is not None:
        agent = settings.agent.model_copy(update={"config": {**settings.agent.config, "updates": updates}})
        settings = settings.model_copy(update={"agent": agent})
    upstream = ctx.upstream_result()
    progress = JobProgress(client, keys, settings.node, "agent", total=1)

    def on_progress(done: int, total: int, info: dict) -> None:
        progress.total = max(total, 1)
        progress.update(done, **info)
        if "loss" in info:
            AGENT_LOSS.labels(settings.node).set(info["loss"])

    outcome = "failed"
    try:
        result = train_on_dreams(settings, store_for(settings), client,
                                 upstream if upstream and "folder" in upstream else None,
                                 AgentHooks(progress=on_progress, stop_requested=progress.stop_requested))
        outcome = "ok"
        events.emit(client, keys, "agent.trained", settings.node, sha256=result["sha256"],
                    wm_slot=result["wm_slot"], wm_version=result["wm_version"])
        return json_result(result, f"{__name__}.train_agent")
    finally:
        progress.finish(outcome)


def navigate(node: str | None = None, iterations: int | None = None, movements: int | None = None,
             seed: int | None = None) -> dict:
    """Drive the camera with the node's agent; frames and manifests go to the store."""
    ctx = job_context(node)
    settings, job, client, keys = ctx.settings, ctx.job, ctx.client, ctx.keys
    iterations = iterations or settings.agent.navigate_iterations
    movements = movements or settings.agent.navigate_movements
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    progress = JobProgress(client, keys, settings.node, "navigate",
                           total=frames_per_run(iterations, movements, settings.agent.hold_frames))
    outcome = "failed"
    try:
        with camera_client_for(settings) as camera:
            result = navigate_camera(settings, store_for(settings), client, camera,
                                     iterations=iterations, movements=movements, seed=seed,
                                     run_id=run_id("nav", job.id if job else None),
                                     on_frame=progress.frame_done)
        outcome = "stopped" if result.stopped else "ok"
        return json_result(result.summary() | {"seed": seed}, f"{__name__}.navigate")
    finally:
        progress.finish(outcome)
