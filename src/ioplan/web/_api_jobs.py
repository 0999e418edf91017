"""``/api/cases/{name}/preview``, ``/simulate`` and ``/api/jobs/...``: simulations.

The preview answers at once (a coarse grid, each applicator alone); the simulation is a
job: ``POST`` returns its id (202), ``GET /api/jobs/{id}`` its state and result (the keys
of ``ioplan simulate --json``), ``GET /api/jobs/{id}/events`` streams its progress as
server-sent events, ``DELETE /api/jobs/{id}`` cancels it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse

from ioplan.web._api_cases import Services, nifti_response
from ioplan.web._cases import CaseNotFoundError
from ioplan.web._simulation import PlanRequest, PreviewRequest, SimulateRequest

__all__ = ["router"]

router = APIRouter(prefix="/api")

#: Seconds between two looks at a job while streaming its events.
POLL_S = 0.1


@router.post("/cases/{name}/preview", summary="Interactive zone preview (coarse engine run)")
def preview(name: str, req: PreviewRequest, svc: Services) -> dict[str, Any]:
    """Simulate each setting alone on a coarse grid (4 mm by default) and join the zones.

    Returns ``spacing_mm``, ``zone_volume_ml`` (the joined zone), ``results`` (one
    ``ioplan simulate --json`` document per setting) and ``zone_url``: a NIfTI with 1 in
    the zone and 2 along the needles.
    """
    return svc.preview(name, req)


@router.get("/previews/{preview_id}.nii.gz", summary="A preview's zone", include_in_schema=True)
def preview_volume(preview_id: str, svc: Services) -> FileResponse:
    """The zone (1) and needles (2) of a preview, NIfTI gzip."""
    return nifti_response(svc.preview_path(preview_id))


@router.post("/cases/{name}/simulate", status_code=202, summary="Start a verified simulation")
def simulate(name: str, req: SimulateRequest, svc: Services) -> dict[str, Any]:
    """Queue a full simulation of the setting on the case; returns the job's document."""
    job = svc.submit_simulation(name, req)
    return svc.jobs.snapshot(job) | {"url": f"/api/jobs/{job.id}"}


@router.post("/cases/{name}/plan", status_code=202, summary="Start an inverse plan")
def plan(name: str, req: PlanRequest, svc: Services) -> dict[str, Any]:
    """Queue ``ioplan plan CASE --out CASE/plan``; the job's result is the plan.json document.

    Refused at once (400) when the case already has a plan and ``overwrite`` is false, or
    when the request cannot be planned (no such tumour, applicator, spacing, ...).
    """
    job = svc.submit_plan(name, req)
    return svc.jobs.snapshot(job) | {"url": f"/api/jobs/{job.id}"}


@router.get("/jobs", summary="The jobs the server remembers")
def list_jobs(svc: Services) -> list[dict[str, Any]]:
    """Every job's document without its result, newest first."""
    return svc.list_jobs()


def _job(svc, job_id: str):
    job = svc.jobs.get(job_id)
    if job is None:
        raise CaseNotFoundError("no such job")
    return job


@router.get("/jobs/{job_id}", summary="A job's state and result")
def get_job(job_id: str, svc: Services) -> dict[str, Any]:
    """The job's document.

    ``id``, ``kind``, ``case``, ``state`` (queued, running, done, failed, cancelled),
    ``progress`` (0-1), ``message``, ``result`` (when done), ``error`` (when failed).
    """
    return svc.jobs.snapshot(_job(svc, job_id))


@router.delete("/jobs/{job_id}", summary="Cancel a job")
def cancel_job(job_id: str, svc: Services) -> JSONResponse:
    """Cancel a queued or running job (202); a finished job is left as it is (200)."""
    job = svc.jobs.cancel(job_id)
    if job is None:
        raise CaseNotFoundError("no such job")
    doc = svc.jobs.snapshot(job)
    return JSONResponse(doc, status_code=202 if doc["state"] in ("queued", "running") else 200)


@router.get("/jobs/{job_id}/zone.nii.gz", summary="A finished simulation's zone")
def job_zone(job_id: str, svc: Services) -> FileResponse:
    """The zone mask of a finished simulation job, NIfTI gzip."""
    job = _job(svc, job_id)
    if "zone" not in job.files:
        raise CaseNotFoundError("this job has no zone (not finished, or not a simulation)")
    return nifti_response(job.files["zone"])


@router.get(
    "/jobs/{job_id}/events",
    summary="A job's progress as server-sent events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def job_events(job_id: str, request: Request, svc: Services) -> StreamingResponse:
    """``event: progress`` with the job's document on each change, ``event: end`` last."""
    job = _job(svc, job_id)

    async def stream():
        seen = -1
        while True:
            if await request.is_disconnected():
                return
            version = job.version  # read before the document: a later change is seen next
            if version != seen:
                seen = version
                doc = svc.jobs.snapshot(job)
                final = doc["state"] in ("done", "failed", "cancelled")
                yield f"event: {'end' if final else 'progress'}\ndata: {json.dumps(doc)}\n\n"
                if final:
                    return
            await asyncio.sleep(POLL_S)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )
