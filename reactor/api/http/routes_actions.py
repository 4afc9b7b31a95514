"""`POST /v1/documents/{id}/actions`: `Reactor.execute` on one document,
one job, as the caller's token allows."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from reactor.api.http.access import Writer, check_type
from reactor.api.http.body import read_json_object
from reactor.api.http.errors import responses
from reactor.api.http.requests import (
    CREATE,
    document_type,
    reactor_of,
    stamp_actions,
    text,
    validated,
)
from reactor.api.http.routes_batches import DEFAULT_WAIT_S, MAX_WAIT_S
from reactor.api.http.schema import request_body
from reactor.domain.actions import ActionSpec
from reactor.domain.errors import DocumentNotFoundError
from reactor.domain.jobs import JobInfo

router = APIRouter(prefix="/v1", tags=["documents"])


class ExecuteRequest(BaseModel):
    """`Reactor.execute` on the document in the path."""

    model_config = ConfigDict(extra="forbid")

    actions: list[ActionSpec] = Field(min_length=1)
    branch: str = "main"
    scope: str | None = None


@router.post(
    "/documents/{document_id}/actions",
    status_code=202,
    response_model=JobInfo,
    summary="Run actions on one document (one job)",
    responses=responses(400, 401, 403, 413, 415, 422, 503),
    openapi_extra=request_body(ExecuteRequest),
)
async def execute(
    document_id: str,
    request: Request,
    response: Response,
    principal: Writer,
    wait: bool = Query(False, description="answer once the job is READ_READY or FAILED"),
    timeout: float = Query(DEFAULT_WAIT_S, gt=0, le=MAX_WAIT_S),
) -> JobInfo:
    reactor = reactor_of(request)
    text(document_id, "document_id")
    body = await read_json_object(request, reactor.config.limits)
    actions = body.get("actions")
    stamp_actions(principal, actions if isinstance(actions, list) else [])
    run = validated(ExecuteRequest, body)
    if principal is not None:
        created = next(
            (a.input.get("document_type") for a in run.actions if a.type == CREATE), None
        )
        kind = created if isinstance(created, str) else None
        if kind is None:
            try:
                kind = await document_type(reactor, document_id)
            except DocumentNotFoundError:
                kind = None  # the reactor refuses actions on nothing, naming the field
        if kind is not None:
            check_type(principal, kind, "writing")
    info = await reactor.execute(document_id, run.branch, run.actions, scope=run.scope)
    if wait:
        try:
            info = await reactor.wait_for_job(info.id, timeout=timeout)
            response.status_code = 200
        except TimeoutError:
            info = await reactor.get_job_status(info.id)
    return info
