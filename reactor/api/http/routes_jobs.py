"""`GET /v1/jobs/{job_id}`: a job's status, as `reactor status --json`."""

from __future__ import annotations

from fastapi import APIRouter, Request

from reactor.api.http.access import Reader, check_type
from reactor.api.http.errors import responses
from reactor.api.http.requests import reactor_of, text
from reactor.domain.jobs import JobInfo, parse_job_id

router = APIRouter(prefix="/v1", tags=["jobs"])


@router.get(
    "/jobs/{job_id}",
    response_model=JobInfo,
    summary="A job's status",
    responses=responses(401, 403, 404, 422),
)
async def job_status(job_id: str, request: Request, principal: Reader) -> JobInfo:
    reactor = reactor_of(request)
    parse_job_id(text(job_id, "job_id") or "")
    info = await reactor.get_job_status(job_id)
    if principal is not None:
        found = (await reactor.document_view.lookup([info.document_id], [])).get(info.document_id)
        if found is not None:
            check_type(principal, found.document_type, "reading")
    return info
