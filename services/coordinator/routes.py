"""REST routes of the coordinator (`/v1/...`), one router per concern: phases, cycles and lifelong
mode, world models, jobs and events. `app.py` includes every router of `routers(...)`."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel
from rq import Callback

from services.coordinator import jobs_view
from shared import cycles, events, versions
from shared.config import Settings
from shared.keys import Keys
from shared.leases import LeaseManager
from shared.phases import PHASES
from shared.progress import request_stop
from shared.queues import job_queue
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
HISTORY_FIELDS = ("version", "fence", "node", "parent", "epochs", "lineage_epochs", "steps",
                  "lifetime_steps", "frames_used", "frame_nodes", "stop_reason", "started_at",
                  "finished_at")

Model = TypeVar("Model", bound=BaseModel)


@dataclass
class Context:
    """What the endpoints of this node's coordinator share."""

    settings: Settings
    keys: Keys
    node: str
    mutating: list[Any]  # the dependencies of every endpoint that changes something

    def enqueue(self, request: Request, phase: str, kwargs: dict) -> JobAccepted:
        spec = PHASES[phase]
        queue = job_queue(self.keys.queue(spec.queue, self.node), request.app.state.redis)
        job = queue.enqueue(spec.func, kwargs=kwargs, job_timeout=self.settings.services.job_timeout_s,
                            result_ttl=cycles.RESULT_TTL_S, failure_ttl=cycles.RESULT_TTL_S,
                            meta={"phase": phase, "node": self.node}, retry=retry_policy(self.settings),
                            on_failure=Callback("shared.cycles.on_phase_failure"))
        return JobAccepted(job_id=job.id, queue=queue.name, status="queued")

    def check_slot(self, slot: str | None) -> None:
        if slot is not None and slot not in self.settings.worldmodel.slot_names():
            raise HTTPException(422, f"slot: unknown slot '{slot}'; this deployment has "
                                     f"{self.settings.worldmodel.slot_names()}")


def routers(settings: Settings, guard: Callable[..., Any]) -> list[APIRouter]:
    ctx = Context(settings, Keys(settings.redis_prefix), settings.node, [Depends(guard)])
    return [phase_router(ctx), cycle_router(ctx), model_router(ctx), job_router(ctx)]


def _router() -> APIRouter:
    return APIRouter(prefix="/v1", tags=["coordinator"])


def _body(body: Model | None, model: type[Model]) -> Model:
    """The request body, or the model's defaults when the request has none."""
    return body if body is not None else model.model_validate({})


def phase_router(ctx: Context) -> APIRouter:
    router = _router()
    node = ctx.node
    accepted: dict[str, Any] = {"response_model": JobAccepted, "status_code": 202,
                                "dependencies": ctx.mutating}

    @router.post("/phases/collect", **accepted)
    def collect(request: Request, body: CollectRequest | None = None) -> JobAccepted:
        return ctx.enqueue(request, "collect", _body(body, CollectRequest).model_dump(exclude_none=True))

    @router.post("/phases/navigate", **accepted)
    def navigate(request: Request, body: NavigateRequest | None = None) -> JobAccepted:
        return ctx.enqueue(request, "navigate",
                           {"node": node, **_body(body, NavigateRequest).model_dump(exclude_none=True)})

    @router.post("/phases/worldmodel", **accepted)
    def worldmodel(request: Request, body: WorldModelRequest | None = None) -> JobAccepted:
        request_body = _body(body, WorldModelRequest)
        ctx.check_slot(request_body.slot)
        return ctx.enqueue(request, "worldmodel",
                           {"node": node, **request_body.model_dump(exclude_none=True)})

    @router.post("/phases/dreamer", **accepted)
    def dreamer(request: Request, body: DreamerRequest | None = None) -> JobAccepted:
        request_body = _body(body, DreamerRequest)
        ctx.check_slot(request_body.slot)
        if request_body.version is not None and request_body.slot is None:
            raise HTTPException(422, "version: a version needs its slot")
        return ctx.enqueue(request, "dreamer",
                           {"node": node, **request_body.model_dump(exclude_none=True)})

    @router.post("/phases/agent", **accepted)
    def agent(request: Request, body: AgentRequest | None = None) -> JobAccepted:
        return ctx.enqueue(request, "agent",
                           {"node": node, **_body(body, AgentRequest).model_dump(exclude_none=True)})

    return router


def _cycle_call(call: Callable[..., dict], request: Request, keys: Keys, cycle_id: str) -> dict:
    """`call(redis, keys, cycle_id)` on a valid cycle id; an unknown cycle is a 404."""
    _valid_id(cycle_id, "cycle")
    try:
        return call(request.app.state.redis, keys, cycle_id)
    except cycles.CycleError as exc:
        raise HTTPException(404, str(exc)) from None


def cycle_router(ctx: Context) -> APIRouter:
    router = _router()
    settings, keys, node = ctx.settings, ctx.keys, ctx.node

    @router.post("/cycles", status_code=202, dependencies=ctx.mutating)
    def start_cycle(request: Request, body: CycleRequest | None = None) -> dict:
        request_body = _body(body, CycleRequest)
        ctx.check_slot(request_body.worldmodel.slot if request_body.worldmodel else None)
        overrides = {name: part.model_dump(exclude_none=True)
                     for name, part in request_body if part is not None}
        return cycles.start_cycle(request.app.state.redis, settings, overrides=overrides)

    @router.get("/cycles")
    def list_cycles(request: Request, limit: int = Query(20, ge=1, le=500)) -> list[dict]:
        return cycles.list_cycles(request.app.state.redis, keys, node, limit)

    @router.get("/cycles/{cycle_id}")
    def get_cycle(request: Request, cycle_id: str) -> dict:
        return _cycle_call(cycles.get_cycle, request, keys, cycle_id)

    @router.post("/cycles/{cycle_id}/stop", status_code=202, dependencies=ctx.mutating)
    def stop_cycle(request: Request, cycle_id: str) -> dict:
        return _cycle_call(cycles.stop_cycle, request, keys, cycle_id)

    @router.get("/lifelong")
    def lifelong(request: Request) -> dict:
        return cycles.lifelong_state(request.app.state.redis, keys, node)

    @router.post("/lifelong/start", status_code=202, dependencies=ctx.mutating)
    def lifelong_start(request: Request) -> dict:
        return cycles.lifelong_start(request.app.state.redis, settings)

    @router.post("/lifelong/stop", status_code=202, dependencies=ctx.mutating)
    def lifelong_stop(request: Request, body: LifelongStop | None = None) -> dict:
        return cycles.lifelong_stop(request.app.state.redis, keys, node, now=_body(body, LifelongStop).now)

    return router


def model_router(ctx: Context) -> APIRouter:
    """World models: slots, holders, lineage."""
    router = _router()
    settings, keys, node = ctx.settings, ctx.keys, ctx.node

    @router.get("/models")
    def models(request: Request) -> dict:
        leases = LeaseManager(request.app.state.redis, keys, node)
        slots = settings.worldmodel.slot_names()
        holders = leases.holders(slots)
        return {"slots": [{"slot": slot, "latest": leases.latest(slot), "holder": holders[slot]}
                          for slot in slots]}

    @router.get("/models/{slot}/history")
    def model_history(request: Request, slot: str, limit: int = Query(100, ge=1, le=10_000)) -> dict:
        ctx.check_slot(slot)
        latest = LeaseManager(request.app.state.redis, keys, node).latest(slot)
        if latest is None:
            return {"slot": slot, "versions": []}
        try:
            chain = versions.history(request.app.state.store, slot, latest["version"], limit)
        except StoreError as exc:
            raise HTTPException(502, f"lineage of {slot} is unreadable: {exc}") from None
        return {"slot": slot, "versions": [{k: m.get(k) for k in HISTORY_FIELDS} for m in chain]}

    return router


def _fetch_job(request: Request, job_id: str) -> Any:
    """The rq job of `job_id`; an invalid id is a 422, an unknown job a 404."""
    try:
        return jobs_view.fetch(request.app.state.redis, job_id)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    except jobs_view.UnknownJob as exc:
        raise HTTPException(404, str(exc)) from None


def job_router(ctx: Context) -> APIRouter:
    """Jobs and events."""
    router = _router()
    keys = ctx.keys

    @router.get("/jobs/{job_id}", response_model=JobView)
    def job(request: Request, job_id: str) -> JobView:
        return jobs_view.view(_fetch_job(request, job_id))

    @router.post("/jobs/{job_id}/stop", status_code=202, dependencies=ctx.mutating)
    def stop(request: Request, job_id: str) -> dict:
        _fetch_job(request, job_id)
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
