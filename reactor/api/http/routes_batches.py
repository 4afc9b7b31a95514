"""`POST /v1/batches` (submit a batch file's request) and `GET /v1/batches`
(Temporal's visibility listing, as `reactor batches` shows it)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query, Request, Response

from reactor.api.http.access import Reader, Writer
from reactor.api.http.body import read_json_object
from reactor.api.http.errors import responses
from reactor.api.http.requests import authorize_batch, reactor_of, text
from reactor.api.http.schema import request_body
from reactor.api.reactor import Reactor
from reactor.api.views import BatchJobs, BatchRow
from reactor.domain.batch import BatchRequest
from reactor.domain.jobs import JobInfo
from reactor.observability.batch_listing import list_batches

router = APIRouter(prefix="/v1", tags=["batches"])

DEFAULT_WAIT_S = 30.0
MAX_WAIT_S = 300.0


@router.post(
    "/batches",
    status_code=202,
    response_model=BatchJobs,
    summary="Submit a batch (the request of a batch file)",
    responses=responses(400, 401, 403, 413, 415, 422, 503),
    openapi_extra=request_body(BatchRequest),
)
async def submit_batch(
    request: Request,
    response: Response,
    principal: Writer,
    wait: bool = Query(False, description="answer once every job is READ_READY or FAILED"),
    timeout: float = Query(
        DEFAULT_WAIT_S, gt=0, le=MAX_WAIT_S, description="seconds `wait` waits at most"
    ),
) -> BatchJobs:
    reactor = reactor_of(request)
    body = await read_json_object(request, reactor.config.limits)
    await authorize_batch(reactor, principal, body)
    result = await reactor.execute_batch(body)
    jobs = list(result.jobs.values())
    if wait:
        finished = await settled(reactor, jobs, timeout)
        if finished is not None:
            response.status_code = 200
            jobs = finished
        else:
            jobs = await reactor.batch_jobs(result.batch_id)
    return BatchJobs.of(result.batch_id, jobs)


async def settled(reactor: Reactor, jobs: list[JobInfo], timeout: float) -> list[JobInfo] | None:
    """Every job's final JobInfo, or None when `timeout` passed first."""
    waits = [reactor.wait_for_job(j.id) for j in jobs]
    try:
        return list(await asyncio.wait_for(asyncio.gather(*waits), timeout))
    except TimeoutError:
        return None


@router.get(
    "/batches",
    response_model=list[BatchRow],
    summary="Batches, newest first (Temporal visibility)",
    responses=responses(401, 422),
)
async def batches(
    request: Request,
    principal: Reader,
    document: str | None = Query(None, description="only batches touching this document"),
    failed: bool = Query(False, description="only batches with failed jobs"),
    limit: int = Query(50, ge=1, le=1000),
) -> list[BatchRow]:
    reactor = reactor_of(request)
    rows = await list_batches(
        reactor.client, document=text(document, "document"), failed=failed, limit=limit
    )
    shown = [BatchRow.model_validate(r) for r in rows]
    if principal is not None:
        shown = [r for r in shown if all(principal.allows(t) for t in r.document_types)]
    return shown
