"""REST routes of the coordinator (`/v1/...`): trigger phases, follow jobs, read events."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from rq import Queue

from shared import events
from shared.config import Settings
from shared.keys import Keys
from shared.progress import request_stop
from shared.schemas import CollectRequest, JobAccepted, JobView

from services.coordinator import jobs_view
from services.coordinator.phases import PHASES


def build_router(settings: Settings, guard) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["coordinator"])
    keys = Keys(settings.redis_prefix)

    def enqueue(request: Request, phase: str, kwargs: dict) -> JobAccepted:
        spec = PHASES[phase]
        queue = Queue(keys.queue(spec.queue), connection=request.app.state.redis)
        job = queue.enqueue(spec.func, kwargs=kwargs, job_timeout=settings.services.job_timeout_s,
                            result_ttl=7 * 86_400, failure_ttl=7 * 86_400,
                            meta={"phase": phase, "node": settings.node})
        return JobAccepted(job_id=job.id, queue=queue.name, status="queued")

    @router.post("/phases/collect", response_model=JobAccepted, status_code=202,
                 dependencies=[Depends(guard)])
    def collect(request: Request, body: CollectRequest | None = None) -> JobAccepted:
        body = body or CollectRequest()
        return enqueue(request, "collect", body.model_dump(exclude_none=True))

    @router.get("/jobs/{job_id}", response_model=JobView)
    def job(request: Request, job_id: str) -> JobView:
        try:
            return jobs_view.view(jobs_view.fetch(request.app.state.redis, job_id))
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        except jobs_view.UnknownJob as exc:
            raise HTTPException(404, str(exc)) from None

    @router.post("/jobs/{job_id}/stop", status_code=202, dependencies=[Depends(guard)])
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
