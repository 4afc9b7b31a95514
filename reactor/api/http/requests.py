"""What every route needs from a request: the reactor, parameters checked
like any other input (text PostgreSQL and Temporal can store), request
bodies validated into the project's models with the offending field named,
and the document type of what a request touches."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

import pydantic
from fastapi import Request

from reactor.api.http.access import check_type, stamped
from reactor.api.http.auth import Principal
from reactor.api.http.errors import ApiError
from reactor.api.reactor import Reactor
from reactor.domain.batch import BatchRequest
from reactor.domain.errors import DocumentNotFoundError
from reactor.domain.limits import text_problem

M = TypeVar("M", bound=pydantic.BaseModel)

CREATE = "CREATE_DOCUMENT"
# A parameter longer than this names nothing the reactor stores.
MAX_PARAMETER_CHARS = 4096


def reactor_of(request: Request) -> Reactor:
    reactor: Reactor = request.app.state.reactor
    return reactor


def text(value: str | None, field: str) -> str | None:
    """`value`, once it is text PostgreSQL and Temporal can store."""
    if value is None:
        return None
    problem = text_problem(value)
    if problem is None and len(value) > MAX_PARAMETER_CHARS:
        problem = f"is {len(value):,} characters long, over {MAX_PARAMETER_CHARS:,}"
    if problem is not None:
        raise ApiError(422, "validation", f"{field}: the text {problem}", field=field)
    return value


def validated(model: type[M], body: dict[str, Any]) -> M:
    try:
        return model.model_validate(body)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        loc = first.get("loc", ())
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        raise ApiError(
            422, "validation", f"{field or 'body'}: {first['msg']}", field=field or "body"
        ) from None


async def document_type(reactor: Reactor, document_id: str) -> str:
    """The type of an existing document (deleted ones included), or 404."""
    found = (await reactor.document_view.lookup([document_id], [])).get(document_id)
    if found is None:
        raise DocumentNotFoundError(f"document {document_id!r} not found")
    return found.document_type


def stamp_actions(principal: Principal | None, actions: Iterable[Any]) -> None:
    """Records the writer's subject in each raw action's context, in place."""
    if principal is None:
        return
    for action in actions:
        if isinstance(action, dict):
            action["context"] = stamped(principal, action.get("context"))


async def authorize_batch(
    reactor: Reactor, principal: Principal | None, body: dict[str, Any]
) -> None:
    """Stamps the writer on every action and refuses (403) a batch touching a
    document type the token does not allow. A body that is not a valid
    batch is left for the reactor to refuse, naming the field."""
    if principal is None:
        return
    jobs = body.get("jobs")
    for job in jobs if isinstance(jobs, list) else []:
        actions = job.get("actions") if isinstance(job, dict) else None
        stamp_actions(principal, actions if isinstance(actions, list) else [])
    try:
        request = BatchRequest.model_validate(body)
    except pydantic.ValidationError:
        return
    created: dict[str, str] = {}
    for job in request.jobs:
        for action in job.actions:
            kind = action.input.get("document_type")
            if action.type == CREATE and isinstance(kind, str):
                created.setdefault(job.document_id, kind)
    others = sorted({j.document_id for j in request.jobs} - created.keys())
    existing = await reactor.document_view.lookup(others, []) if others else {}
    for kind in created.values():
        check_type(principal, kind, "writing")
    for document_id in others:
        if document_id in existing:
            check_type(principal, existing[document_id].document_type, "writing")
