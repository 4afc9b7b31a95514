"""Who may do what, as FastAPI dependencies: without a JWT handler everyone
may do everything (the server then listens on loopback only); with one,
writes need a trusted token, reads too unless reads are public, and a
token's document-type claim bounds which documents it touches."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from reactor.api.http.auth import JwtHandler, Principal, Unauthenticated
from reactor.api.http.errors import ApiError

# The action-context key recording who wrote an operation.
SUBJECT_KEY = "sub"


def _handler(request: Request) -> JwtHandler | None:
    handler: JwtHandler | None = request.app.state.auth
    return handler


async def _authenticate(handler: JwtHandler, request: Request) -> Principal:
    header = request.headers.get("authorization")
    try:
        return await handler.authenticate(header)
    except Unauthenticated as exc:
        challenge = 'Bearer error="invalid_token"' if header else "Bearer"
        raise ApiError(
            401,
            "unauthenticated",
            str(exc),
            field="authorization",
            headers={"WWW-Authenticate": challenge},
        ) from None


async def reader(request: Request) -> Principal | None:
    """The caller of a read: None when anyone may read anything."""
    handler = _handler(request)
    if handler is None:
        return None
    if handler.public_reads and "authorization" not in request.headers:
        return None
    return await _authenticate(handler, request)


async def writer(request: Request) -> Principal | None:
    """The caller of a write: None only when the API has no authentication."""
    handler = _handler(request)
    if handler is None:
        return None
    principal = await _authenticate(handler, request)
    if principal.subject is None:
        raise ApiError(
            403,
            "forbidden",
            "the token has no subject (`sub`): writes record who made them",
            field="authorization",
        )
    return principal


def check_type(principal: Principal | None, document_type: str, what: str) -> None:
    if principal is not None and not principal.allows(document_type):
        raise ApiError(
            403,
            "forbidden",
            f"the token does not allow {what} documents of type {document_type!r}",
            field="document_type",
        )


def stamped(principal: Principal | None, context: Any) -> Any:
    """An action's context carrying the writer's subject (replacing any the
    client put there: the log must say who really wrote it)."""
    if principal is None or principal.subject is None:
        return context
    if context is None:
        return {SUBJECT_KEY: principal.subject}
    if not isinstance(context, dict):
        return context  # malformed: the reactor refuses it, naming the field
    return {**context, SUBJECT_KEY: principal.subject}


# Route parameters: the caller of a read, of a write.
Reader = Annotated[Principal | None, Depends(reader)]
Writer = Annotated[Principal | None, Depends(writer)]
