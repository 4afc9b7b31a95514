"""One error shape for every refusal the API answers: `{"error": {type,
message, field, job}}`, so a client handles them all alike and can point at
the offending input.

Status codes: 400 for input that cannot be read (malformed JSON, a bad
cursor), 422 for input that was read and refused (a value, a query
parameter, a batch the reactor rejects), 401/403 for authentication and
permission, 404/405 for what names nothing, 413 and 415 for the body's size
and type, 503 for a reactor shutting down or its services out of reach, 504
for a consistency token not reached in time, 500 for anything else."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from reactor.domain.errors import (
    AmbiguousIdentifierError,
    ConsistencyTimeoutError,
    DocumentNotFoundError,
    JobNotFoundError,
    ShutdownError,
    ValidationError,
)
from reactor.domain.jobs import Coordinate
from reactor.storage.errors import is_transient, one_line

log = logging.getLogger("reactor.api")


class ErrorDetail(BaseModel):
    type: str
    message: str
    field: str | None = None
    job: str | None = None
    # The coordinate a consistency token still waits for (504 only).
    coordinate: Coordinate | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    """A refusal with its status, raised anywhere in a request's handling."""

    def __init__(
        self,
        status: int,
        type: str,
        message: str,
        *,
        field: str | None = None,
        job: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.detail = ErrorDetail(type=type, message=message, field=field, job=job)
        self.headers = headers


def error_response(
    status: int, detail: ErrorDetail, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        ErrorResponse(error=detail).model_dump(mode="json", exclude_none=True),
        status_code=status,
        headers=headers,
    )


# What the API documents for each error status (OpenAPI `responses`).
def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorResponse} for status in statuses}


def _field_of(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """FastAPI's error location as the name a caller knows: the query or
    path parameter, or the body's dotted path."""
    parts = list(loc)
    if parts and parts[0] in ("query", "path", "header", "body"):
        parts = parts[1:]
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.detail, exc.headers)


async def _request_invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    field = _field_of(first.get("loc", ()))
    message = f"{field}: {first.get('msg', 'invalid')}" if field else first.get("msg", "invalid")
    return error_response(422, ErrorDetail(type="validation", message=message, field=field or None))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        detail = ErrorDetail(
            type="not_found", message=f"no route {request.url.path!r}", field="path"
        )
    elif exc.status_code == 405:
        detail = ErrorDetail(
            type="method_not_allowed",
            message=f"{request.method} is not allowed on {request.url.path!r}",
            field="method",
        )
    else:
        detail = ErrorDetail(type="http", message=str(exc.detail))
    return error_response(exc.status_code, detail, dict(exc.headers or {}))


async def _reactor_refused(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, JobNotFoundError):
        return error_response(
            404, ErrorDetail(type="not_found", message=exc.reason, field=exc.field or "job_id")
        )
    assert isinstance(exc, ValidationError)
    return error_response(
        422, ErrorDetail(type="validation", message=exc.reason, field=exc.field, job=exc.job)
    )


async def _not_found(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(404, ErrorDetail(type="not_found", message=str(exc), field="id"))


async def _ambiguous(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(409, ErrorDetail(type="ambiguous", message=str(exc), field="id"))


async def _timed_out(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ConsistencyTimeoutError)
    coordinate = exc.coordinate if isinstance(exc.coordinate, Coordinate) else None
    return error_response(
        504,
        ErrorDetail(
            type="consistency_timeout",
            message=str(exc),
            field="consistency_token",
            coordinate=coordinate,
        ),
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    """Anything else: the client learns only whether retrying may help (503:
    the database or Temporal is out of reach) or not (500); the traceback
    goes to the server's log (Starlette re-raises it to uvicorn, which logs
    it)."""
    if is_transient(exc):
        log.warning("%s %s: %s", request.method, request.url.path, one_line(exc))
        detail = ErrorDetail(
            type="unavailable", message=f"the reactor's services are out of reach: {one_line(exc)}"
        )
        return error_response(503, detail)
    return error_response(
        500, ErrorDetail(type="internal", message="internal error (the server's log has it)")
    )


async def _shutting_down(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(503, ErrorDetail(type="shutting_down", message=str(exc)))


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ValidationError, _reactor_refused)
    app.add_exception_handler(DocumentNotFoundError, _not_found)
    app.add_exception_handler(AmbiguousIdentifierError, _ambiguous)
    app.add_exception_handler(ConsistencyTimeoutError, _timed_out)
    app.add_exception_handler(ShutdownError, _shutting_down)
    app.add_exception_handler(Exception, _unexpected)
