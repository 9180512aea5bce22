"""Learning cycles as chained rq jobs, and lifelong mode.

A cycle is `collect` (or `navigate` once the node has an agent) -> `worldmodel` -> `dreamer` ->
`agent`, enqueued at once with rq dependencies: each phase starts when the one before it
succeeded, and reads that phase's result from its dependency (no polling loops). The cycle record
(a Redis hash) is written before any job is enqueued; job callbacks, which run in the workers,
close it: the last phase's success finishes it, any failure fails it with the phase's reason and
cancels the phases still waiting. In lifelong mode a finished cycle starts the next one, a failed
one schedules the next after an exponential back-off, and `lifelong_stop` ends the loop at the
next cycle boundary (or at once, stopping the running phase, with `now=True`).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import timedelta
from typing import Any

import redis
from redis.typing import EncodableT, FieldT
from rq import Callback
from rq.exceptions import NoSuchJobError
from rq.job import Job

from shared import events
from shared.config import Settings, load_settings
from shared.keys import Keys
from shared.metrics import CYCLES
from shared.phases import PHASES
from shared.progress import request_stop
from shared.queues import fetch_job, job_queue
from shared.reliability import decide_retry, retry_policy

log = logging.getLogger(__name__)

CYCLE_PHASES = ("worldmodel", "dreamer", "agent")
RESULT_TTL_S = 7 * 86_400
ENDED = ("finished", "failed", "stopped")


class CycleError(LookupError):
    pass


def _s(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _text(value: object) -> str:
    """A Redis reply item (a hash field, a sorted-set member) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _hash(client: redis.Redis, key: str) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in client.hgetall(key).items()}


def _newest_ids(client: redis.Redis, key: str, limit: int) -> list[str]:
    """The members of a sorted set by descending score, as text."""
    return [_text(member) for member in client.zrevrange(key, 0, limit - 1)]


def plan(client: redis.Redis, settings: Settings) -> list[tuple[str, dict[str, Any]]]:
    """The phases of the next cycle of this node, with their arguments."""
    keys, node = Keys(settings.redis_prefix), settings.node
    if client.exists(keys.agent_latest(node)):
        first = ("navigate", {"node": node, "iterations": settings.agent.navigate_iterations,
                              "movements": settings.agent.navigate_movements})
    else:
        first = ("collect", {"iterations": settings.collect.iterations,
                             "movements": settings.collect.movements})
    return [first, ("worldmodel", {"node": node}), ("dreamer", {"node": node}), ("agent", {"node": node})]


def start_cycle(client: redis.Redis, settings: Settings, *, lifelong: bool = False,
                overrides: dict[str, dict[str, Any]] | None = None) -> dict:
    """Enqueue one cycle; returns its record. `overrides` add keyword arguments per phase."""
    keys = Keys(settings.redis_prefix)
    cycle_id = f"cycle-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    steps = plan(client, settings)
    for name, extra in (overrides or {}).items():
        for phase, kwargs in steps:
            if phase == name:
                kwargs.update(extra)
    phases = [{"name": name, "job_id": f"{cycle_id}-{name}", "queue": PHASES[name].queue}
              for name, _ in steps]
    created_at = time.time()
    record: dict[FieldT, EncodableT] = {
        "id": cycle_id, "node": settings.node, "status": "running", "created_at": created_at,
        "lifelong": int(lifelong), "phases": json.dumps(phases)}
    client.hset(keys.cycle(cycle_id), mapping=record)
    client.zadd(keys.cycles(settings.node), {cycle_id: created_at})
    previous: Job | None = None
    for (name, kwargs), info in zip(steps, phases, strict=True):
        spec = PHASES[name]
        queue = job_queue(keys.queue(spec.queue, settings.node), client)
        previous = queue.enqueue(
            spec.func, kwargs=kwargs, job_id=info["job_id"], depends_on=previous,
            job_timeout=settings.services.job_timeout_s, result_ttl=RESULT_TTL_S,
            failure_ttl=RESULT_TTL_S, meta={"cycle_id": cycle_id, "phase": name, "node": settings.node},
            retry=retry_policy(settings),
            on_success=Callback("shared.cycles.on_phase_success"),
            on_failure=Callback("shared.cycles.on_phase_failure"))
    events.emit(client, keys, "cycle.started", settings.node, cycle_id=cycle_id,
                phases=[p["name"] for p in phases], lifelong=lifelong)
    return get_cycle(client, keys, cycle_id)


def _record(client: redis.Redis, keys: Keys, cycle_id: str) -> dict:
    rec = _hash(client, keys.cycle(cycle_id))
    if not rec:
        raise CycleError(f"no cycle with id '{cycle_id}'")
    return rec


def get_cycle(client: redis.Redis, keys: Keys, cycle_id: str) -> dict:
    """The cycle with each phase's status, timings, progress, result summary and error."""
    rec = _record(client, keys, cycle_id)
    phases = []
    for info in json.loads(rec["phases"]):
        state = _job_state(client, info["job_id"])
        if info.get("name") == rec.get("failed_phase") and state["status"] not in ENDED:
            state = {**state, "status": "failed", "error": rec.get("failed_error") or "failed"}
        elif rec["status"] in ENDED and state["status"] in ("deferred", "scheduled", "queued"):
            # The cycle's closer cancels these right after closing it; do not show them waiting.
            state = {**state, "status": "canceled"}
        phases.append({**info, **state})
    return {"id": rec["id"], "node": rec["node"], "status": rec["status"],
            "created_at": float(rec["created_at"]),
            "ended_at": float(rec["ended_at"]) if rec.get("ended_at") else None,
            "reason": rec.get("reason"), "lifelong": rec.get("lifelong") == "1", "phases": phases}


def _job_state(client: redis.Redis, job_id: str) -> dict:
    try:
        job = fetch_job(job_id, client)
    except NoSuchJobError:
        return {"status": "unknown"}
    job_status = job.get_status(refresh=False)
    status: str = getattr(job_status, "value", str(job_status))
    out: dict[str, Any] = {"status": status, "progress": job.meta.get("progress"),
                           "started_at": job.started_at.timestamp() if job.started_at else None,
                           "ended_at": job.ended_at.timestamp() if job.ended_at else None}
    if job.started_at and job.ended_at:
        out["seconds"] = round((job.ended_at - job.started_at).total_seconds(), 3)
    if status == "finished":
        out["result"] = job.return_value()
    elif status == "failed":
        latest = job.latest_result()
        text = (getattr(latest, "exc_string", None) or "").strip().splitlines()
        out["error"] = text[-1] if text else "failed"
    return out


def list_cycles(client: redis.Redis, keys: Keys, node: str, limit: int = 20) -> list[dict]:
    ids = _newest_ids(client, keys.cycles(node), limit)
    return [get_cycle(client, keys, i) for i in ids if client.exists(keys.cycle(i))]


def _end(client: redis.Redis, keys: Keys, cycle_id: str, status: str, reason: str | None,
         failed_phase: str = "", failed_error: str = "") -> bool:
    """Close a running cycle once (the first closer wins); True if this call closed it.

    A failure also records which phase failed and why, in the same atomic step: rq marks the job
    failed only after its failure callback returns, and a reader in between must not see the
    failed cycle's phase still "started"."""
    script = client.register_script(
        "if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end "
        "redis.call('HSET', KEYS[1], 'status', ARGV[1], 'ended_at', ARGV[2], 'reason', ARGV[3], "
        "'failed_phase', ARGV[4], 'failed_error', ARGV[5]) "
        "return 1")
    closed = bool(script(keys=[keys.cycle(cycle_id)], args=[status, repr(time.time()), reason or "",
                                                            failed_phase, failed_error]))
    if closed:
        CYCLES.labels(_s(client.hget(keys.cycle(cycle_id), "node")) or "", status).inc()
    return closed


def _cancel_waiting(client: redis.Redis, keys: Keys, rec: dict, after: str | None = None) -> None:
    """Cancel the cycle's phases that have not started (after `after`); ask a running one to stop."""
    phases = json.loads(rec["phases"])
    names = [p["name"] for p in phases]
    start = names.index(after) + 1 if after in names else 0
    for info in phases[start:]:
        try:
            job = fetch_job(info["job_id"], client)
        except NoSuchJobError:
            continue
        status = getattr(job.get_status(), "value", "")
        if status in ("deferred", "queued", "scheduled"):
            job.cancel()
        elif status == "started":
            request_stop(client, keys, info["job_id"])


# ---- rq callbacks (run inside workers) -------------------------------------------------------
def on_phase_success(job: Job, connection: redis.Redis, result: Any, *args, **kwargs) -> None:
    cycle_id, phase = job.meta.get("cycle_id"), job.meta.get("phase")
    if not cycle_id:
        return
    settings = load_settings()
    keys = Keys(settings.redis_prefix)
    rec = _record(connection, keys, cycle_id)
    names = [p["name"] for p in json.loads(rec["phases"])]
    if phase != names[-1]:
        return
    if _end(connection, keys, cycle_id, "finished", None):
        events.emit(connection, keys, "cycle.finished", rec["node"], cycle_id=cycle_id, outcome="ok")
        if rec.get("lifelong") == "1":
            _lifelong_next(connection, settings, failed=False)


def on_phase_failure(job: Job, connection: redis.Redis, typ, value, traceback) -> None:
    cycle_id, phase = job.meta.get("cycle_id"), job.meta.get("phase")
    settings = load_settings()
    keys = Keys(settings.redis_prefix)
    if decide_retry(job, typ, value):
        events.emit(connection, keys, "phase.retrying", job.meta.get("node", settings.node),
                    phase=phase, job_id=job.id, cycle_id=cycle_id, retries_left=job.retries_left,
                    reason=f"{getattr(typ, '__name__', typ)}: {value}")
        return
    if not cycle_id:
        return
    _fail_cycle(connection, settings, cycle_id, phase, f"{getattr(typ, '__name__', typ)}: {value}")


def _fail_cycle(connection: redis.Redis, settings: Settings, cycle_id: str, phase: str | None,
                error: str) -> None:
    keys = Keys(settings.redis_prefix)
    rec = _record(connection, keys, cycle_id)
    reason = f"{phase} failed: {error}"
    if _end(connection, keys, cycle_id, "failed", reason, failed_phase=phase or "",
            failed_error=error):
        _cancel_waiting(connection, keys, rec, after=phase)
        events.emit(connection, keys, "cycle.finished", rec["node"], cycle_id=cycle_id,
                    outcome="failed", reason=reason)
        if rec.get("lifelong") == "1":
            _lifelong_next(connection, settings, failed=True)


def fail_cycle_of_refused_job(connection: redis.Redis, settings: Settings, job_id: str,
                              error: str) -> str | None:
    """End the cycle of a job that its worker refused to read (its meta is unreadable too, so the
    cycle is found from the job id, `<cycle id>-<phase>`, and only if that cycle lists the job);
    returns the cycle id, or None when the job belongs to no cycle."""
    keys = Keys(settings.redis_prefix)
    cycle_id, _, phase = job_id.rpartition("-")
    rec = _hash(connection, keys.cycle(cycle_id)) if cycle_id else {}
    if not rec or job_id not in {p.get("job_id") for p in json.loads(rec.get("phases") or "[]")}:
        return None
    _fail_cycle(connection, settings, cycle_id, phase, error)
    return cycle_id


def stop_cycle(client: redis.Redis, keys: Keys, cycle_id: str, reason: str = "stopped on request") -> dict:
    rec = _record(client, keys, cycle_id)
    if _end(client, keys, cycle_id, "stopped", reason):
        _cancel_waiting(client, keys, rec)
        events.emit(client, keys, "cycle.finished", rec["node"], cycle_id=cycle_id, outcome="stopped")
    return get_cycle(client, keys, cycle_id)


# ---- lifelong mode ------------------------------------------------------------------------
def lifelong_state(client: redis.Redis, keys: Keys, node: str) -> dict:
    raw = _hash(client, keys.lifelong(node))
    return {"node": node, "enabled": raw.get("enabled") == "1",
            "cycles_started": int(raw.get("cycles_started") or 0),
            "consecutive_failures": int(raw.get("consecutive_failures") or 0),
            "current_cycle": raw.get("current_cycle"),
            "next_attempt_at": float(raw["next_attempt_at"]) if raw.get("next_attempt_at") else None}


def _running_cycle(client: redis.Redis, keys: Keys, node: str) -> str | None:
    for cycle_id in _newest_ids(client, keys.cycles(node), 1):
        if _s(client.hget(keys.cycle(cycle_id), "status")) == "running":
            return cycle_id
    return None


def _start_lifelong_cycle(client: redis.Redis, settings: Settings) -> dict:
    keys = Keys(settings.redis_prefix)
    cycle = start_cycle(client, settings, lifelong=True)
    client.hset(keys.lifelong(settings.node), mapping={"current_cycle": cycle["id"], "next_attempt_at": ""})
    client.hincrby(keys.lifelong(settings.node), "cycles_started", 1)
    return cycle


def lifelong_start(client: redis.Redis, settings: Settings) -> dict:
    keys = Keys(settings.redis_prefix)
    client.hset(keys.lifelong(settings.node), mapping={"enabled": "1", "consecutive_failures": 0})
    events.emit(client, keys, "lifelong.started", settings.node)
    if _running_cycle(client, keys, settings.node) is None:
        _start_lifelong_cycle(client, settings)
    return lifelong_state(client, keys, settings.node)


def lifelong_stop(client: redis.Redis, keys: Keys, node: str, now: bool = False) -> dict:
    client.hset(keys.lifelong(node), mapping={"enabled": "0", "next_attempt_at": ""})
    events.emit(client, keys, "lifelong.stopped", node, now=now)
    if now:
        running = _running_cycle(client, keys, node)
        if running:
            stop_cycle(client, keys, running, "lifelong mode stopped")
    return lifelong_state(client, keys, node)


def _lifelong_next(client: redis.Redis, settings: Settings, failed: bool) -> None:
    keys = Keys(settings.redis_prefix)
    state = lifelong_state(client, keys, settings.node)
    if not state["enabled"]:
        return
    if not failed:
        client.hset(keys.lifelong(settings.node), "consecutive_failures", 0)
        _start_lifelong_cycle(client, settings)
        return
    failures = client.hincrby(keys.lifelong(settings.node), "consecutive_failures", 1)
    delay = min(settings.cycles.max_backoff_s, settings.cycles.backoff_s * 2 ** (failures - 1))
    client.hset(keys.lifelong(settings.node), "next_attempt_at", repr(time.time() + delay))
    job_queue(keys.queue("control", settings.node), client).enqueue_in(
        timedelta(seconds=delay), "shared.cycles.lifelong_tick", settings.node,
        result_ttl=RESULT_TTL_S, failure_ttl=RESULT_TTL_S)


def lifelong_tick(node: str) -> str | None:
    """Delayed restart after a failed cycle (a job on the control queue): starts the next cycle
    if lifelong mode is still on and nothing is running."""
    settings = load_settings()
    if node != settings.node:
        settings = settings.model_copy(update={"node": node})
    from rq import get_current_job

    job = get_current_job()
    if job is None:
        raise RuntimeError("lifelong_tick runs only as an rq job")
    client = job.connection
    keys = Keys(settings.redis_prefix)
    if not lifelong_state(client, keys, node)["enabled"] or _running_cycle(client, keys, node):
        return None
    return _start_lifelong_cycle(client, settings)["id"]
