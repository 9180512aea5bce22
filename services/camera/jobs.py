"""rq jobs of the camera queue. Arguments are small values; frames travel through the store."""

from __future__ import annotations

import random

from rq import get_current_job

from services.camera.sweep import run_sweep
from shared.camera_client import camera_client_for
from shared.config import load_settings
from shared.keys import Keys
from shared.progress import JobProgress
from shared.queues import json_result
from shared.recording import frames_per_run, run_id
from shared.redis import client_for
from shared.store import store_for


def collect_sweep(iterations: int | None = None, movements: int | None = None,
                  seed: int | None = None) -> dict:
    """The random sweep: frames and one manifest per round into the store; returns a summary."""
    settings = load_settings()
    iterations = settings.collect.iterations if iterations is None else iterations
    movements = settings.collect.movements if movements is None else movements
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    job = get_current_job()
    redis_client = job.connection if job else client_for(settings)
    store = store_for(settings)
    hold = settings.collect.hold_frames
    progress = JobProgress(redis_client, Keys(settings.redis_prefix), settings.node, "collect",
                           frames_per_run(iterations, movements, hold))
    outcome = "failed"
    try:
        with camera_client_for(settings) as camera:
            result = run_sweep(camera, store, node=settings.node, camera=settings.camera.name,
                               iterations=iterations, movements=movements, seed=seed,
                               collection_id=run_id("sweep", job.id if job else None),
                               hold_frames=hold, on_frame=progress.frame_done)
        outcome = "stopped" if result.stopped else "ok"
        summary = result.summary(store, settings.node) | {"seed": seed}
    finally:
        progress.finish(outcome)
    return json_result(summary, f"{__name__}.collect_sweep")
