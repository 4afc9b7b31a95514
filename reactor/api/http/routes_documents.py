"""Documents: one by id or slug (once a consistency token is reached, if
given), and search by type and parent, paged."""

from __future__ import annotations

import pydantic
from fastapi import APIRouter, Query, Request

from reactor.api.http import paging
from reactor.api.http.access import Reader, check_type
from reactor.api.http.errors import ApiError, responses
from reactor.api.http.paging import Cursor, Limit, Page
from reactor.api.http.requests import reactor_of, text
from reactor.domain.document import Document
from reactor.domain.jobs import ConsistencyToken

router = APIRouter(prefix="/v1", tags=["documents"])

MAX_READ_TIMEOUT_S = 300.0


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
