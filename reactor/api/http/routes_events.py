"""GET /v1/events: document changes as Server-Sent Events.

One event per operation, `event: operation`, its `id:` the operation's place
in the global log ("<tx>.<ordinal>", opaque to clients): a client that
reconnects with `Last-Event-ID` gets what followed it, in order, nothing
twice. Every stream reads the reactor's one `ChangeFeed`, the tail its
subscriptions read too. A client that
falls `max_queued` events behind gets `event: overflow` naming the last id it
was sent, and its stream ends; a stream authorized by a token ends when the
token expires (`event: expired`, likewise). `: ping` comments keep idle
streams open through proxies.

The stream is left out of the OpenAPI document: a response that never ends
is not something its schema (or a fuzzer reading it) can describe;
docs/http.md describes it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from reactor.api.http.access import SUBJECT_KEY, Reader, check_type
from reactor.api.http.errors import ApiError
from reactor.api.http.requests import reactor_of, text
from reactor.api.reactor import Reactor
from reactor.application.change_feed import (
    MAX_QUEUED,
    PAGE_SIZE,
    ChangeFeed,
    FeedClosed,
    FeedEvent,
    FeedReader,
    Match,
    Overflowed,
)
from reactor.application.subscriptions import SearchFilter
from reactor.storage.errors import one_line
from reactor.storage.operation_store import Position

log = logging.getLogger("reactor.api")

router = APIRouter(prefix="/v1", tags=["events"])

KEEPALIVE_S = 15.0  # idle seconds between `: ping` comments
# Seconds a stream's last message (overflow, or the end at shutdown) may
# wait for a client that does not read before the connection is dropped.
FINAL_WRITE_S = 5.0
MAX_IDS = 100  # `id` filters per stream
_EVENT_ID = re.compile(r"([0-9]{1,19})\.([0-9]{1,19})")
_MAX_BIGINT = 2**63 - 1


@dataclass(frozen=True)
class EventStreamConfig:
    max_queued: int = MAX_QUEUED
    keepalive_s: float = KEEPALIVE_S
    page_size: int = PAGE_SIZE  # operations per database read, backlog and tail alike


def configure_events(app: FastAPI, config: EventStreamConfig) -> None:
    """Sets the streams' limits; before the first stream opens."""
    app.state.events_config = config


def _config(app: FastAPI) -> EventStreamConfig:
    config: EventStreamConfig = getattr(app.state, "events_config", EventStreamConfig())
    return config


@dataclass
class OpenStreams:
    """An app's open streams: the server's stop ends them, not the feed
    (the reactor's subscriptions read it too)."""

    readers: set[FeedReader] = field(default_factory=set)
    closed: bool = False


def feed_of(request: Request) -> ChangeFeed:
    return reactor_of(request).change_feed


def feed_of_app(app: FastAPI) -> ChangeFeed | None:
    """The feed the app's streams read (its reactor's)."""
    reactor: Reactor | None = getattr(app.state, "reactor", None)
    return None if reactor is None else reactor.change_feed


def _streams(app: FastAPI) -> OpenStreams:
    streams: OpenStreams | None = getattr(app.state, "event_streams", None)
    if streams is None:
        streams = app.state.event_streams = OpenStreams()
    return streams


async def close_event_streams(app: FastAPI) -> None:
    """Ends every open stream of the app, and any opened later (the server
    is stopping)."""
    streams = _streams(app)
    streams.closed = True
    feed = feed_of_app(app)
    if feed is not None:
        for reader in list(streams.readers):
            feed.end(reader)


def event_id(position: Position) -> str:
    return f"{position.tx_id}.{position.ordinal}"


def parse_event_id(value: str, field: str) -> Position:
    found = _EVENT_ID.fullmatch(value.strip())
    if found is None or max(int(found[1]), int(found[2])) > _MAX_BIGINT:
        raise ApiError(
            400,
            "bad_event_id",
            f"{field}: {value[:80]!r} is not an event id of this stream",
            field=field,
        )
    return Position(int(found[1]), int(found[2]))


def event_data(event: FeedEvent) -> dict[str, Any]:
    op = event.operation
    data: dict[str, Any] = {
        "document_id": op.document_id,
        "document_type": event.document_type,
        "scope": op.scope,
        "branch": op.branch,
        "index": op.index,
        "type": op.action.type,
        "action_id": op.action.id,
        "hash": op.hash,
        "timestamp": op.timestamp,
        "skip": op.skip,
        "job_id": op.job_id,
    }
    subject = (op.action.context or {}).get(SUBJECT_KEY)
    if isinstance(subject, str):
        data["subject"] = subject
    return data


def encode(event: FeedEvent) -> bytes:
    return (
        f"id: {event_id(event.position)}\nevent: operation\ndata: ".encode()
        + orjson.dumps(event_data(event))
        + b"\n\n"
    )


def ended_message(event: str, last: Position) -> bytes:
    """A stream's last event, naming the id to resume after."""
    data = orjson.dumps({"last_event_id": event_id(last)})
    return f"event: {event}\ndata: ".encode() + data + b"\n\n"


@router.get(
    "/events",
    summary="Document changes as Server-Sent Events",
    include_in_schema=False,
)
async def events(
    request: Request,
    principal: Reader,
    type: str | None = Query(None, description="document type"),
    id: Annotated[list[str] | None, Query(description="document id (repeatable)")] = None,
    parent: str | None = Query(None, description="id of a parent document"),
    last_event_id: str | None = Query(
        None, description="resume after this event id (the Last-Event-ID header wins)"
    ),
) -> StreamingResponse:
    text(type, "type")
    text(parent, "parent")
    for value in id or ():
        text(value, "id")
    if id is not None and len(id) > MAX_IDS:
        raise ApiError(422, "validation", f"id: at most {MAX_IDS} ids per stream", field="id")
    if principal is not None and type is not None:
        check_type(principal, type, "reading")
    search = SearchFilter(type=type, ids=id, parent_id=parent)

    def match(event: FeedEvent) -> bool:
        allowed = principal is None or principal.allows(event.document_type)
        return allowed and search.matches(
            event.operation.document_id, event.document_type, event.parents
        )

    header = request.headers.get("last-event-id")
    field, resume = (
        ("Last-Event-ID", header) if header is not None else ("last_event_id", last_event_id)
    )
    after = parse_event_id(resume, field) if resume is not None else None
    feed = feed_of(request)
    if after is not None:
        try:
            await feed.check(after)
        except ValueError as exc:
            raise ApiError(400, "bad_event_id", f"{field}: {exc}", field=field) from None
    exp = principal.claims.get("exp") if principal is not None else None
    return EventStream(
        feed,
        match,
        after,
        needs_parents=parent is not None,
        config=_config(request.app),
        streams=_streams(request.app),
        expires=float(exp) if isinstance(exp, int | float) else None,
    )


class EventStream(StreamingResponse):
    """The stream's own loop: it races each write with the reader's end, so
    a client that stopped reading neither blocks the shutdown nor keeps its
    stream after an overflow."""

    def __init__(
        self,
        feed: ChangeFeed,
        match: Match,
        after: Position | None,
        *,
        needs_parents: bool,
        config: EventStreamConfig,
        streams: OpenStreams,
        expires: float | None = None,
    ):
        super().__init__(
            iter(()),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self.feed = feed
        self.match = match
        self.after = after
        self.needs_parents = needs_parents
        self.max_queued = config.max_queued
        self.page_size = config.page_size
        self.streams = streams
        self.keepalive_s = config.keepalive_s
        self.expires = expires  # the token's `exp` (seconds since the epoch)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The reader opens first: once the client has the headers, "now" is fixed.
        async with self.feed.open(
            self.match,
            after=self.after,
            needs_parents=self.needs_parents,
            max_queued=self.max_queued,
            page_size=self.page_size,
        ) as reader:
            self.streams.readers.add(reader)
            try:
                if self.streams.closed:
                    self.feed.end(reader)
                await self._serve(reader, receive, send)
            finally:
                self.streams.readers.discard(reader)

    async def _serve(self, reader: FeedReader, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        pump = asyncio.create_task(self._pump(reader, send))
        gone = asyncio.create_task(_disconnected(receive))
        try:
            await asyncio.wait({pump, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, gone):
                task.cancel()
            await asyncio.gather(pump, gone, return_exceptions=True)

    async def _pump(self, reader: FeedReader, send: Send) -> None:
        loop = asyncio.get_running_loop()
        last = reader.position  # the last id this client was sent
        written = loop.time()
        # The token's expiry, on the loop's clock: the stream ends with it.
        ends = None if self.expires is None else loop.time() + self.expires - time.time()
        while True:
            wait = written + self.keepalive_s - loop.time()
            if ends is not None:
                if loop.time() >= ends:
                    await _final(send, ended_message("expired", last))
                    return
                wait = min(wait, ends - loop.time())
            try:
                batch = await reader.next(max(0.0, wait))
            except Overflowed:
                await _final(send, ended_message("overflow", last))
                return
            except FeedClosed:
                await _final(send, b"")
                return
            except Exception as exc:  # noqa: BLE001 - the client resumes where it was
                # A backlog read failed (the database out of reach, say): the
                # stream ends cleanly and the client reconnects from `last`.
                log.warning("event stream ended: %s", one_line(exc))
                await _final(send, b"")
                return
            if batch:
                chunk = b"".join(encode(e) for e in batch)
            elif loop.time() - written >= self.keepalive_s:
                chunk = b": ping\n\n"
            else:
                continue
            if not await _write(send, chunk, reader.ended):
                continue  # the reader ended while the client was not reading
            written = loop.time()
            if batch:
                last = batch[-1].position


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _write(send: Send, chunk: bytes, ended: asyncio.Event) -> bool:
    """Whether `chunk` was handed to the connection before the reader ended."""
    sending = asyncio.ensure_future(
        send({"type": "http.response.body", "body": chunk, "more_body": True})
    )
    stop = asyncio.ensure_future(ended.wait())
    try:
        await asyncio.wait({sending, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if sending.done():
        sending.result()
        return True
    sending.cancel()
    await asyncio.gather(sending, return_exceptions=True)
    return False


async def _final(send: Send, chunk: bytes) -> None:
    """The stream's last message and its end; a client that does not take
    them in time has its connection dropped by the server."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(
            send({"type": "http.response.body", "body": chunk, "more_body": False}),
            FINAL_WRITE_S,
        )
