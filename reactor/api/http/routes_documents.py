"""Documents: run actions on one, read one (optionally once a consistency
token is reached), search them, and page through their children, parents
and operations."""

from __future__ import annotations

import pydantic
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from reactor.api.http import paging
from reactor.api.http.access import Reader, Writer, check_type
from reactor.api.http.auth import Principal
from reactor.api.http.body import read_json_object
from reactor.api.http.errors import ApiError, responses
from reactor.api.http.paging import DEFAULT_LIMIT, MAX_LIMIT, Page
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
from reactor.domain.document import Document, Operation
from reactor.domain.errors import DocumentNotFoundError
from reactor.domain.jobs import ConsistencyToken, JobInfo

router = APIRouter(prefix="/v1", tags=["documents"])

MAX_READ_TIMEOUT_S = 300.0


class ExecuteRequest(BaseModel):
    """`Reactor.execute` on the document in the path."""

    model_config = ConfigDict(extra="forbid")

    actions: list[ActionSpec] = Field(min_length=1)
    branch: str = "main"
    scope: str | None = None


Limit = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
Cursor = Query(None, description="next_cursor of the previous page")


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


@router.get(
    "/documents",
    response_model=Page[Document],
    summary="Documents by type and/or parent, by id",
    responses=responses(400, 401, 403, 422),
)
async def find(
    request: Request,
    principal: Reader,
    type: str | None = Query(None, description="document type"),
    parent: str | None = Query(None, description="id of a parent document"),
    branch: str = "main",
    cursor: str | None = Cursor,
    limit: int = Limit,
) -> Page[Document]:
    reactor = reactor_of(request)
    for value, name in ((type, "type"), (parent, "parent"), (branch, "branch")):
        text(value, name)
    if principal is not None and principal.document_types is not None:
        if type is None:
            raise ApiError(
                403,
                "forbidden",
                "the token allows some document types only: name one with `type`",
                field="type",
            )
        check_type(principal, type, "reading")
    params = (type, parent, branch)
    after = paging.decode(cursor, "documents", params, str)
    page = await reactor.find(
        type=type,
        parent_id=parent,
        cursor=after if isinstance(after, str) else None,
        limit=limit,
        branch=branch,
    )
    nxt = page.next_cursor
    return Page[Document](
        results=page.results,
        next_cursor=paging.encode("documents", params, str(nxt)) if nxt is not None else None,
    )


@router.get(
    "/documents/{id_or_slug}",
    response_model=Document,
    summary="One document: header and state per scope",
    responses=responses(401, 403, 404, 409, 422, 504),
)
async def get_document(
    id_or_slug: str,
    request: Request,
    principal: Reader,
    consistency_token: str | None = Query(
        None, description="a job's consistency_token (JSON): answer once it is reached"
    ),
    timeout: float = Query(10.0, gt=0, le=MAX_READ_TIMEOUT_S),
    branch: str = "main",
) -> Document:
    reactor = reactor_of(request)
    text(id_or_slug, "id_or_slug")
    text(branch, "branch")
    token = _token(text(consistency_token, "consistency_token"))
    doc = await reactor.get_by_id_or_slug(
        id_or_slug, consistency_token=token, branch=branch, timeout=timeout
    )
    check_type(principal, doc.header.document_type, "reading")
    return doc


def _token(raw: str | None) -> ConsistencyToken | None:
    if raw is None:
        return None
    try:
        return ConsistencyToken.model_validate_json(raw)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ApiError(
            422,
            "validation",
            f"consistency_token{'.' + where if where else ''}: {first['msg']}",
            field="consistency_token",
        ) from None


async def _readable(request: Request, document_id: str, principal: Principal | None) -> None:
    text(document_id, "document_id")
    kind = await document_type(reactor_of(request), document_id)
    check_type(principal, kind, "reading")


@router.get(
    "/documents/{document_id}/children",
    response_model=Page[str],
    summary="Ids of a document's children, by id",
    responses=responses(400, 401, 403, 404, 422),
)
async def children(
    document_id: str,
    request: Request,
    principal: Reader,
    cursor: str | None = Cursor,
    limit: int = Limit,
) -> Page[str]:
    await _readable(request, document_id, principal)
    after = paging.decode(cursor, "children", (document_id,), str)
    ids = await reactor_of(request).get_children(document_id)
    return _id_page("children", document_id, ids, after, limit)


@router.get(
    "/documents/{document_id}/parents",
    response_model=Page[str],
    summary="Ids of a document's parents, by id",
    responses=responses(400, 401, 403, 404, 422),
)
async def parents(
    document_id: str,
    request: Request,
    principal: Reader,
    cursor: str | None = Cursor,
    limit: int = Limit,
) -> Page[str]:
    await _readable(request, document_id, principal)
    after = paging.decode(cursor, "parents", (document_id,), str)
    ids = await reactor_of(request).get_parents(document_id)
    return _id_page("parents", document_id, ids, after, limit)


def _id_page(kind: str, document_id: str, ids: list[str], after: object, limit: int) -> Page[str]:
    shown, last = paging.after_id(ids, after if isinstance(after, str) else None, limit)
    return Page[str](
        results=shown,
        next_cursor=paging.encode(kind, (document_id,), last) if last is not None else None,
    )


@router.get(
    "/documents/{document_id}/operations",
    response_model=Page[Operation],
    summary="A document's operations, in log order",
    responses=responses(400, 401, 403, 404, 422),
)
async def operations(
    document_id: str,
    request: Request,
    principal: Reader,
    scope: str | None = Query(None, description="one scope (default: all)"),
    branch: str = "main",
    cursor: str | None = Cursor,
    limit: int = Limit,
) -> Page[Operation]:
    text(scope, "scope")
    text(branch, "branch")
    await _readable(request, document_id, principal)
    params = (document_id, scope, branch)
    after = paging.decode(cursor, "operations", params, int)
    page = await reactor_of(request).get_operations(
        document_id,
        scope=scope,
        branch=branch,
        cursor=after if isinstance(after, int) else 0,
        limit=limit,
    )
    nxt = page.next_cursor
    return Page[Operation](
        results=page.results,
        next_cursor=paging.encode("operations", params, int(nxt)) if nxt is not None else None,
    )
