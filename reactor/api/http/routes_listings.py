"""A document's children, parents and operations, each paged by an
opaque cursor (reactor.api.http.paging)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from reactor.api.http import paging
from reactor.api.http.access import Reader, check_type
from reactor.api.http.auth import Principal
from reactor.api.http.errors import responses
from reactor.api.http.paging import Cursor, Limit, Page
from reactor.api.http.requests import document_type, reactor_of, text
from reactor.domain.document import Operation

router = APIRouter(prefix="/v1", tags=["documents"])


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
    summary="A document's operations, in log order (or newest first)",
    responses=responses(400, 401, 403, 404, 422),
)
async def operations(
    document_id: str,
    request: Request,
    principal: Reader,
    scope: str | None = Query(None, description="one scope (default: all)"),
    branch: str = "main",
    newest_first: bool = Query(False, description="the newest operation first"),
    cursor: str | None = Cursor,
    limit: int = Limit,
) -> Page[Operation]:
    text(scope, "scope")
    text(branch, "branch")
    await _readable(request, document_id, principal)
    params = (document_id, scope, branch, *(("newest",) if newest_first else ()))
    after = paging.decode(cursor, "operations", params, int)
    page = await reactor_of(request).operation_store.get_operations(
        document_id,
        scope=scope,
        branch=branch,
        cursor=after if isinstance(after, int) else 0,
        limit=limit,
        newest_first=newest_first,
    )
    nxt = page.next_cursor
    return Page[Operation](
        results=page.results,
        next_cursor=paging.encode("operations", params, int(nxt)) if nxt is not None else None,
    )
