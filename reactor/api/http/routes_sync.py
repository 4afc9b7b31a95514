"""Sync between reactors over HTTP: a peer asks who this reactor is
(`GET /v1/sync/identity`), pulls pages of its log as loads
(`GET /v1/sync/operations`) and pushes its own (`POST /v1/sync/load`).
Positions are the event ids of /v1/events ("<tx>.<ordinal>"), so a peer
can wait on the event stream for what follows its cursor."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from reactor.api.http.access import Reader, Writer, check_type
from reactor.api.http.auth import Principal
from reactor.api.http.body import read_json_object
from reactor.api.http.errors import ApiError, responses
from reactor.api.http.requests import CREATE, reactor_of, text, validated
from reactor.api.http.routes_events import event_id, parse_event_id
from reactor.api.http.schema import request_body
from reactor.api.reactor import Reactor
from reactor.domain.jobs import JobInfo, JobStatus
from reactor.domain.limits import MAX_DEPTH, find_unstorable
from reactor.domain.load_plan import MAX_ATTEMPT
from reactor.domain.sync import ORIGIN_RE, LoadRequest
from reactor.storage.identity import reactor_id
from reactor.storage.operation_store import Position
from reactor.storage.sync_source import MAX_PAGE, SyncSource

router = APIRouter(prefix="/v1/sync", tags=["sync"])

DEFAULT_PAGE = 500
DEFAULT_WAIT_S = 30.0
MAX_WAIT_S = 300.0
FINAL = (JobStatus.READ_READY, JobStatus.FAILED)
# Levels of a load body above an action's input (body.loads[i].operations[j]
# .action.input): the input's own depth is the reactor's to bound.
LOAD_DEPTH = MAX_DEPTH + 6


class Identity(BaseModel):
    reactor_id: str


class OperationsAnswer(BaseModel):
    """A page of the log: `next` is the cursor to ask after next time,
    `more` whether the page was cut at its limit."""

    reactor_id: str
    next: str
    more: bool
    loads: list[LoadRequest]


class LoadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    origin: str = Field(pattern=ORIGIN_RE.pattern, description="the sender's reactor id")
    loads: list[LoadRequest]
    attempt: int = Field(
        default=0,
        ge=0,
        le=MAX_ATTEMPT,
        description="the sender's retry of these loads after a failure (0: the first)",
    )


class LoadAnswer(BaseModel):
    reactor_id: str
    jobs: list[JobInfo]


@router.get(
    "/identity",
    response_model=Identity,
    summary="This reactor's id, as its peers name it",
    responses=responses(401),
)
async def sync_identity(request: Request, principal: Reader) -> Identity:
    return Identity(reactor_id=await reactor_id(reactor_of(request).db))


@router.get(
    "/operations",
    response_model=OperationsAnswer,
    summary="The log after a position, as loads for a peer",
    responses=responses(400, 401, 403, 422),
)
async def sync_operations(
    request: Request,
    principal: Reader,
    after: str | None = Query(None, description="position to read after (none: the start)"),
    limit: int = Query(DEFAULT_PAGE, ge=1, le=MAX_PAGE, description="operations read at most"),
    peer: str | None = Query(None, description="the reader's reactor id: its own are left out"),
    type: str | None = Query(None, description="only documents of this type"),
    document: str | None = Query(None, description="only this document"),
) -> OperationsAnswer:
    reactor = reactor_of(request)
    text(type, "type")
    text(document, "document")
    if peer is not None and not ORIGIN_RE.fullmatch(peer):
        raise ApiError(422, "validation", "peer: not a reactor id", field="peer")
    if type is not None:
        check_type(principal, type, "reading")
    position = Position()
    if after is not None:
        position = parse_event_id(after, "after")
        try:
            await reactor.change_feed.check(position)
        except ValueError as exc:
            raise ApiError(400, "bad_event_id", f"after: {exc}", field="after") from None
    page = await SyncSource(reactor.db).read_page(
        position,
        limit,
        peer,
        type,
        document,
        allowed_types=None if principal is None else principal.document_types,
    )
    return OperationsAnswer(
        reactor_id=await reactor_id(reactor.db),
        next=event_id(page.next),
        more=page.more,
        loads=page.loads,
    )


@router.post(
    "/load",
    response_model=LoadAnswer,
    summary="Load a peer's operations (one job per load, waited for)",
    responses=responses(400, 401, 403, 413, 415, 422, 503),
    openapi_extra=request_body(LoadBody),
)
async def sync_load(
    request: Request,
    principal: Writer,
    timeout: float = Query(
        DEFAULT_WAIT_S, gt=0, le=MAX_WAIT_S, description="seconds to wait for the jobs at most"
    ),
) -> LoadAnswer:
    reactor = reactor_of(request)
    raw = await read_json_object(request, reactor.config.limits)
    # Text PostgreSQL cannot store (NUL, lone surrogates) is refused here,
    # naming where it is, before any of it reaches a query.
    unstorable = find_unstorable(raw, max_depth=LOAD_DEPTH)
    if unstorable is not None:
        where, problem = unstorable
        field = where.lstrip(".") or "body"
        raise ApiError(422, "validation", f"{field}: {problem}", field=field)
    body = validated(LoadBody, raw)
    await authorize_loads(reactor, principal, body.loads)
    jobs: list[JobInfo] = []
    if body.loads:
        result = await reactor.load_batch(body.loads, origin=body.origin, attempt=body.attempt)
        jobs = await waited(reactor, list(result.jobs.values()), timeout)
    return LoadAnswer(reactor_id=await reactor_id(reactor.db), jobs=jobs)


async def authorize_loads(
    reactor: Reactor, principal: Principal | None, loads: Sequence[LoadRequest]
) -> None:
    """Refuses (403) loads touching a type the token may not write: the type
    a load claims, the type its create operation names, and the type of the
    document already here."""
    if principal is None:
        return
    kinds: set[str] = set()
    for load in loads:
        if load.document_type is not None:
            kinds.add(load.document_type)
        for op in load.operations:
            kind = op.action.input.get("document_type") if op.action.type == CREATE else None
            if isinstance(kind, str):
                kinds.add(kind)
    ids = sorted({load.document_id for load in loads})
    existing = await reactor.document_view.lookup(ids, []) if ids else {}
    kinds.update(found.document_type for found in existing.values())
    for kind in sorted(kinds):
        check_type(principal, kind, "writing")


async def waited(reactor: Reactor, jobs: list[JobInfo], timeout: float) -> list[JobInfo]:
    """Each job's final JobInfo, or its status as it stands once `timeout`
    passed."""

    async def one(job: JobInfo) -> JobInfo:
        if job.status in FINAL:
            return job
        try:
            return await reactor.wait_for_job(job.id, timeout=timeout)
        except TimeoutError:
            return await reactor.get_job_status(job.id)

    return list(await asyncio.gather(*(one(j) for j in jobs)))
