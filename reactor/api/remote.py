"""Another reactor, over its HTTP API (reactor/api/http/routes_sync.py): what
a sync channel pulls from and pushes to.

Two kinds of failure, because a channel treats them differently:
`RemoteUnavailableError` (no answer, a timeout, a 5xx: the remote may come
back, retry later) and `RemoteRejectedError` (a 4xx: the remote refused what
was asked, and asking again the same way gets the same answer)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import httpx
import orjson
import pydantic
from pydantic import BaseModel, field_validator

from reactor.domain.errors import ReactorError
from reactor.domain.jobs import JobInfo
from reactor.domain.sync import LoadRequest
from reactor.storage.operation_store import Position

DEFAULT_TIMEOUT_S = 30.0
# Seconds the remote waits for pushed load jobs; the request waits a little longer.
LOAD_WAIT_S = 30.0
LOAD_MARGIN_S = 10.0
_POSITION = re.compile(r"([0-9]+)\.([0-9]+)")
_WAKING_EVENTS = ("operation", "overflow")  # an overflow: many events happened
_T = TypeVar("_T")


class RemoteUnavailableError(ReactorError):
    """The remote did not answer (refused, reset, timed out) or failed (5xx)."""


class RemoteRejectedError(ReactorError):
    """The remote refused the request (4xx)."""

    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.field = field


def position_text(position: Position) -> str:
    return f"{position.tx_id}.{position.ordinal}"


def parse_position(value: str) -> Position:
    found = _POSITION.fullmatch(value)
    if found is None:
        raise ValueError(f"{value[:80]!r} is not a position")
    return Position(int(found[1]), int(found[2]))


class OperationsPage(BaseModel):
    reactor_id: str
    next: Position
    more: bool
    loads: list[LoadRequest]

    @field_validator("next", mode="before")
    @classmethod
    def _position(cls, value: Any) -> Any:
        return parse_position(value) if isinstance(value, str) else value


class RemoteReactor:
    def __init__(self, url: str, token: str | None = None, timeout: float = DEFAULT_TIMEOUT_S):
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout)

    async def __aenter__(self) -> RemoteReactor:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def identity(self) -> str:
        body = await self._call("GET", "/v1/sync/identity")
        return _answer(lambda: str(body["reactor_id"]), "/identity")

    async def operations(
        self,
        after: Position,
        limit: int = 500,
        peer: str | None = None,
        document_type: str | None = None,
        document_id: str | None = None,
    ) -> OperationsPage:
        params: dict[str, str | int] = {"after": position_text(after), "limit": limit}
        for name, value in (("peer", peer), ("type", document_type), ("document", document_id)):
            if value is not None:
                params[name] = value
        body = await self._call("GET", "/v1/sync/operations", params=params)
        return _answer(lambda: OperationsPage.model_validate(body), "/operations")

    async def load(
        self,
        origin: str,
        loads: Sequence[LoadRequest],
        wait_s: float = LOAD_WAIT_S,
        attempt: int = 0,
    ) -> list[JobInfo]:
        """Each load's job as the remote reports it once finished (or after
        `wait_s`, as it stands then). `attempt`: a retry after a failure."""
        content = orjson.dumps(
            {
                "origin": origin,
                "loads": [load.model_dump(mode="json") for load in loads],
                "attempt": attempt,
            }
        )
        body = await self._call(
            "POST",
            "/v1/sync/load",
            params={"timeout": wait_s},
            content=content,
            headers={"content-type": "application/json"},
            timeout=max(self.timeout, wait_s + LOAD_MARGIN_S),
        )
        jobs = _answer(lambda: [JobInfo.model_validate(job) for job in body["jobs"]], "/load")
        if len(jobs) != len(loads):
            # Only a job per load acknowledges it: a cursor must not move
            # past a load the remote did not say it wrote.
            raise RemoteUnavailableError(
                f"{self.url}/v1/sync/load: {len(jobs)} jobs answer {len(loads)} loads"
            )
        return jobs

    async def wait_for_event(
        self,
        after: Position,
        timeout_s: float,
        document_type: str | None = None,
        document_id: str | None = None,
    ) -> bool:
        """Whether the remote's event stream shows an event after `after`
        within `timeout_s`."""
        params: dict[str, str] = {}
        if document_type is not None:
            params["type"] = document_type
        if document_id is not None:
            params["id"] = document_id
        headers = {"last-event-id": position_text(after)}
        # Idle streams only carry pings: the wait is bounded here, not by reads.
        timeout = httpx.Timeout(self.timeout, read=None)
        try:
            async with asyncio.timeout(timeout_s):
                async with self._http.stream(
                    "GET", "/v1/events", params=params, headers=headers, timeout=timeout
                ) as response:
                    if response.status_code != 200:
                        await response.aread()
                        _raise_for(response)
                    async for line in response.aiter_lines():
                        if line.startswith("event:") and line[6:].strip() in _WAKING_EVENTS:
                            return True
        except TimeoutError:
            return False
        except httpx.TransportError as exc:
            raise RemoteUnavailableError(f"{self.url}: {_describe(exc)}") from exc
        return False  # the stream ended (the remote stopping, the token expiring)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        try:
            response = await self._http.request(
                method, path, timeout=timeout or self.timeout, **kwargs
            )
        except httpx.TransportError as exc:
            raise RemoteUnavailableError(f"{self.url}: {_describe(exc)}") from exc
        _raise_for(response)
        try:
            return response.json()
        except ValueError as exc:
            raise RemoteUnavailableError(f"{self.url}{path}: the answer is not JSON") from exc


def _answer(read: Callable[[], _T], path: str) -> _T:
    """What `read` makes of an answer, or RemoteUnavailableError when the
    answer is not what a reactor's API returns (another program, another
    version): the round fails and says so instead of failing obscurely."""
    try:
        return read()
    except (pydantic.ValidationError, KeyError, TypeError, ValueError) as exc:
        raise RemoteUnavailableError(
            f"/v1/sync{path}: an answer this reactor cannot read ({_describe(exc)[:200]})"
        ) from exc


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _raise_for(response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    message, field = response.reason_phrase, None
    try:
        error = response.json().get("error", {})
        message = str(error.get("message") or message)
        field = error.get("field")
    except (ValueError, AttributeError):
        pass
    if status >= 500:
        raise RemoteUnavailableError(f"{response.request.url.path}: {status}: {message}")
    raise RemoteRejectedError(status, message, field)
