"""REST routes of the coordinator (`/v1/...`): phases, cycles, lifelong mode, jobs, events."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from rq import Callback, Queue

from services.coordinator import jobs_view
from shared import cycles, events, versions
from shared.config import Settings
from shared.keys import Keys
from shared.leases import LeaseManager
from shared.phases import PHASES
from shared.progress import request_stop
from shared.reliability import retry_policy
from shared.schemas import (
    AgentRequest,
    CollectRequest,
    CycleRequest,
    DreamerRequest,
    JobAccepted,
    JobView,
    LifelongStop,
    NavigateRequest,
    WorldModelRequest,
)
from shared.store import StoreError

ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"


def build_router(settings: Settings, guard) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["coordinator"])
    keys = Keys(settings.redis_prefix)
    node = settings.node

    def enqueue(request: Request, phase: str, kwargs: dict) -> JobAccepted:
        spec = PHASES[phase]
        queue = Queue(keys.queue(spec.queue, node), connection=request.app.state.redis)
        job = queue.enqueue(spec.func, kwargs=kwargs, job_timeout=settings.services.job_timeout_s,
                            result_ttl=cycles.RESULT_TTL_S, failure_ttl=cycles.RESULT_TTL_S,
                            meta={"phase": phase, "node": node}, retry=retry_policy(settings),
                            on_failure=Callback("shared.cycles.on_phase_failure"))
        return JobAccepted(job_id=job.id, queue=queue.name, status="queued")

    def check_slot(slot: str | None) -> None:
        if slot is not None and slot not in settings.worldmodel.slot_names():
            raise HTTPException(422, f"slot: unknown slot '{slot}'; this deployment has "
                                     f"{settings.worldmodel.slot_names()}")

    mutating = [Depends(guard)]

    @router.post("/phases/collect", response_model=JobAccepted, status_code=202, dependencies=mutating)
    def collect(request: Request, body: CollectRequest | None = None) -> JobAccepted:
        return enqueue(request, "collect", (body or CollectRequest()).model_dump(exclude_none=True))

    @router.post("/phases/navigate", response_model=JobAccepted, status_code=202, dependencies=mutating)
    def navigate(request: Request, body: NavigateRequest | None = None) -> JobAccepted:
        return enqueue(request, "navigate",
                       {"node": node, **(body or NavigateRequest()).model_dump(exclude_none=True)})

    @router.post("/phases/worldmodel", response_model=JobAccepted, status_code=202, dependencies=mutating)
    def worldmodel(request: Request, body: WorldModelRequest | None = None) -> JobAccepted:
        body = body or WorldModelRequest()
        check_slot(body.slot)
        return enqueue(request, "worldmodel", {"node": node, **body.model_dump(exclude_none=True)})

    @router.post("/phases/dreamer", response_model=JobAccepted, status_code=202, dependencies=mutating)
    def dreamer(request: Request, body: DreamerRequest | None = None) -> JobAccepted:
        body = body or DreamerRequest()
        check_slot(body.slot)
        if body.version is not None and body.slot is None:
            raise HTTPException(422, "version: a version needs its slot")
        return enqueue(request, "dreamer", {"node": node, **body.model_dump(exclude_none=True)})

    @router.post("/phases/agent", response_model=JobAccepted, status_code=202, dependencies=mutating)
    def agent(request: Request, body: AgentRequest | None = None) -> JobAccepted:
        return enqueue(request, "agent", {"node": node, **(body or AgentRequest()).model_dump(exclude_none=True)})

    # ---- cycles and lifelong mode ----------------------------------------------------------------
    @router.post("/cycles", status_code=202, dependencies=mutating)
    def start_cycle(request: Request, body: CycleRequest | None = None) -> dict:
        body = body or CycleRequest()
        check_slot(body.worldmodel.slot if body.worldmodel else None)
        overrides = {name: part.model_dump(exclude_none=True)
                     for name, part in body if part is not None}
        return cycles.start_cycle(request.app.state.redis, settings, overrides=overrides)

    @router.get("/cycles")
    def list_cycles(request: Request, limit: int = Query(20, ge=1, le=500)) -> list[dict]:
        return cycles.list_cycles(request.app.state.redis, keys, node, limit)

    @router.get("/cycles/{cycle_id}")
    def get_cycle(request: Request, cycle_id: str) -> dict:
        _valid_id(cycle_id, "cycle")
        try:
            return cycles.get_cycle(request.app.state.redis, keys, cycle_id)
        except cycles.CycleError as exc:
            raise HTTPException(404, str(exc)) from None

    @router.post("/cycles/{cycle_id}/stop", status_code=202, dependencies=mutating)
    def stop_cycle(request: Request, cycle_id: str) -> dict:
        _valid_id(cycle_id, "cycle")
        try:
            return cycles.stop_cycle(request.app.state.redis, keys, cycle_id)
        except cycles.CycleError as exc:
            raise HTTPException(404, str(exc)) from None

    @router.get("/lifelong")
    def lifelong(request: Request) -> dict:
        return cycles.lifelong_state(request.app.state.redis, keys, node)

    @router.post("/lifelong/start", status_code=202, dependencies=mutating)
    def lifelong_start(request: Request) -> dict:
        return cycles.lifelong_start(request.app.state.redis, settings)

    @router.post("/lifelong/stop", status_code=202, dependencies=mutating)
    def lifelong_stop(request: Request, body: LifelongStop | None = None) -> dict:
        return cycles.lifelong_stop(request.app.state.redis, keys, node, now=(body or LifelongStop()).now)

    # ---- world models: slots, holders, lineage ----------------------------------------------
    @router.get("/models")
    def models(request: Request) -> dict:
        leases = LeaseManager(request.app.state.redis, keys, node)
        slots = settings.worldmodel.slot_names()
        holders = leases.holders(slots)
        return {"slots": [{"slot": slot, "latest": leases.latest(slot), "holder": holders[slot]}
                          for slot in slots]}

    @router.get("/models/{slot}/history")
    def model_history(request: Request, slot: str, limit: int = Query(100, ge=1, le=10_000)) -> dict:
        check_slot(slot)
        latest = LeaseManager(request.app.state.redis, keys, node).latest(slot)
        if latest is None:
            return {"slot": slot, "versions": []}
        try:
            chain = versions.history(request.app.state.store, slot, latest["version"], limit)
        except StoreError as exc:
            raise HTTPException(502, f"lineage of {slot} is unreadable: {exc}") from None
        fields = ("version", "fence", "node", "parent", "epochs", "lineage_epochs", "frames_used",
                  "frame_nodes", "stop_reason", "started_at", "finished_at")
        return {"slot": slot, "versions": [{k: m.get(k) for k in fields} for m in chain]}

    # ---- jobs and events --------------------------------------------------------------------------
    @router.get("/jobs/{job_id}", response_model=JobView)
    def job(request: Request, job_id: str) -> JobView:
        try:
            return jobs_view.view(jobs_view.fetch(request.app.state.redis, job_id))
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        except jobs_view.UnknownJob as exc:
            raise HTTPException(404, str(exc)) from None

    @router.post("/jobs/{job_id}/stop", status_code=202, dependencies=mutating)
    def stop(request: Request, job_id: str) -> dict:
        try:
            jobs_view.fetch(request.app.state.redis, job_id)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        except jobs_view.UnknownJob as exc:
            raise HTTPException(404, str(exc)) from None
        request_stop(request.app.state.redis, keys, job_id)
        return {"job_id": job_id, "stop_requested": True}

    @router.get("/events")
    def list_events(request: Request, since: str = Query("0-0", pattern=r"^\d+-\d+$"),
                    count: int = Query(100, ge=1, le=1000)) -> list[dict]:
        return [e.__dict__ for e in events.read_since(request.app.state.redis, keys, since, count)]

    return router


def _valid_id(value: str, what: str) -> None:
    if not re.match(ID_PATTERN, value):
        raise HTTPException(422, f"'{value[:80]}' is not a valid {what} id (letters, digits, '-' and '_')")
