"""GET /v1/events on a live server over loopback, against a real reactor,
PostgreSQL and Temporal: events for writes from this process and from a
worker process, filters, resuming with Last-Event-ID while writes go on
(nothing missed, nothing twice), a client that stops reading overflowing
while another keeps receiving, bad event ids, authentication, keep-alives,
and streams ending with the server."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from reactor.api.http import JwtHandler, create_app
from reactor.api.http.routes_events import (
    EventStreamConfig,
    configure_events,
    event_id,
    feed_of_app,
)
from reactor.api.http.server import ApiServer
from reactor.api.reactor import Reactor
from reactor.domain.jobs import JobStatus
from reactor.storage.operation_index import OperationIndex
from reactor.storage.operation_store import Position
from tests.conftest import Stack, spawn_worker, wait_polling, wait_until
from tests.support.http_api import DRIVE, TODO, add, create, relate, todo_job

SECRET = "a-test-secret-of-at-least-32-bytes!!"
WAIT_S = 60


@asynccontextmanager
async def serving(
    reactor: Reactor, config: EventStreamConfig | None = None, auth: JwtHandler | None = None
) -> AsyncIterator[tuple[ApiServer, httpx.AsyncClient]]:
    app = create_app(reactor, auth)
    if config is not None:
        configure_events(app, config)
    async with (
        ApiServer(app) as server,
        httpx.AsyncClient(base_url=server.url, timeout=WAIT_S) as client,
    ):
        yield server, client


@dataclass
class Sse:
    """One SSE message as the client reads it."""

    event: str = "message"
    id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


class Stream:
    """An open event stream; `lines` keeps comment lines (pings)."""

    def __init__(self, response: httpx.Response):
        self.response = response
        self._lines = response.aiter_lines()
        self.comments: list[str] = []
        self.seen: list[Sse] = []  # every message read so far
        self.ended = False

    async def next(self) -> Sse | None:
        """The next message; None once the stream ended."""
        message = Sse()
        seen = False
        async with asyncio.timeout(WAIT_S):
            async for line in self._lines:
                if line == "":
                    if seen:
                        self.seen.append(message)
                        return message
                    continue
                if line.startswith(":"):
                    self.comments.append(line)
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                seen = True
                if name == "event":
                    message.event = value
                elif name == "id":
                    message.id = value
                elif name == "data":
                    message.data = json.loads(value)
        self.ended = True
        return None

    async def until(self, predicate: Any) -> list[Sse]:
        """Messages up to and including the first that `predicate` accepts."""
        out: list[Sse] = []
        while True:
            message = await self.next()
            assert message is not None, f"the stream ended after {len(out)} messages"
            out.append(message)
            if predicate(message):
                return out


@asynccontextmanager
async def stream(
    client: httpx.AsyncClient, params: Any = None, headers: dict[str, str] | None = None
) -> AsyncIterator[Stream]:
    async with client.stream("GET", "/v1/events", params=params, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Stream(response)


async def run(reactor: Reactor, *jobs: dict[str, Any]) -> None:
    result = await reactor.execute_batch({"jobs": list(jobs)})
    infos = await reactor.wait_for_batch(result.batch_id)
    assert all(i.status.done and i.status != JobStatus.FAILED for i in infos), infos


async def log_after(reactor: Reactor, after: Position) -> list[tuple[Position, Any]]:
    rows = await OperationIndex(reactor.db).read(after, 100_000)
    return rows


def described(messages: list[Sse]) -> list[tuple[str, str]]:
    return [(m.data["document_id"], m.data["type"]) for m in messages if m.event == "operation"]


@pytest.mark.usefixtures("worker")
async def test_a_write_through_the_python_api_appears_as_an_operation_event(
    reactor: Reactor,
) -> None:
    async with serving(reactor) as (_, api), stream(api, {"id": "e1"}) as events:
        await run(reactor, create("e1"), todo_job("e1", add("1"), key="add", after="create-e1"))
        got = await events.until(lambda m: m.data.get("type") == "ADD_TODO_ITEM")
        assert described(got) == [("e1", "CREATE_DOCUMENT"), ("e1", "ADD_TODO_ITEM")]
        first, second = got
        assert (first.event, second.event) == ("operation", "operation")
        assert first.id is not None and second.id is not None
        ops = (await reactor.get_operations("e1", scope="global")).results
        assert second.data["hash"] == ops[-1].hash
        assert second.data["action_id"] == ops[-1].action.id
        assert {k: second.data[k] for k in ("document_type", "scope", "branch", "index")} == {
            "document_type": TODO,
            "scope": "global",
            "branch": "main",
            "index": ops[-1].index,
        }
        assert first.data["scope"] == "document"
        assert {"timestamp", "skip", "job_id"} <= set(second.data)
        position = await OperationIndex(reactor.db).head()
        assert second.id == event_id(position)  # the operation's place in the global log


async def test_a_write_made_by_a_worker_process_appears(
    reactor: Reactor, stack: Stack, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    worker = spawn_worker(stack, database_url, task_queue, log)
    try:
        await wait_polling(log)
        async with serving(reactor) as (_, api), stream(api, {"type": TODO}) as events:
            # Submitted here, executed and committed by the other process.
            await run(reactor, create("p1"))
            got = await events.until(lambda m: m.event == "operation")
            assert described(got) == [("p1", "CREATE_DOCUMENT")]
    finally:
        worker.terminate()
        worker.wait(30)


@pytest.mark.usefixtures("worker")
async def test_filters_by_type_ids_and_parent(reactor: Reactor) -> None:
    await run(
        reactor,
        create("drive1", DRIVE),
        create("x"),
        create("y"),
        create("z"),
        relate("drive1", "x", key="rel"),
    )
    async with (
        serving(reactor) as (_, api),
        stream(api, {"type": DRIVE}) as drives,
        stream(api, [("id", "y"), ("id", "end")]) as by_id,
        stream(api, {"parent": "drive1"}) as children,
    ):
        await run(reactor, todo_job("x", add("1"), key="x"))
        await run(reactor, todo_job("z", add("1"), key="z"))
        await run(reactor, todo_job("y", add("1"), key="y"))
        # Sentinels each filter takes, written last.
        await run(reactor, create("end"), create("drive2", DRIVE))
        await run(reactor, relate("drive1", "end", key="rel-end"))

        got = await drives.until(lambda m: m.data.get("document_id") == "drive2")
        assert described(got) == [("drive2", "CREATE_DOCUMENT")]
        got = await by_id.until(lambda m: m.data.get("document_id") == "end")
        assert described(got) == [("y", "ADD_TODO_ITEM"), ("end", "CREATE_DOCUMENT")]
        got = await children.until(lambda m: m.data.get("type") == "ADD_RELATIONSHIP")
        # The parent's own changes come with its children's.
        assert described(got) == [("x", "ADD_TODO_ITEM"), ("drive1", "ADD_RELATIONSHIP")]


@pytest.mark.usefixtures("worker")
async def test_resuming_with_last_event_id_misses_nothing_and_repeats_nothing(
    reactor: Reactor,
) -> None:
    await run(reactor, create("r1"), create("r2"))
    start = await OperationIndex(reactor.db).head()
    writes = 24
    # Small pages: the backlog takes several reads, the tail several pages.
    config = EventStreamConfig(page_size=3)
    async with serving(reactor, config) as (_, api), stream(api) as witness:
        # A client that stays: the shared tail runs ahead of the one that
        # leaves, which comes back to a backlog read in pages, then joins.
        watching = asyncio.create_task(witness.until(lambda _: len(witness.seen) == writes))

        async def behind(count: int) -> None:
            await wait_until(
                lambda: _true_when(len(witness.seen) >= count), WAIT_S, f"{count} events"
            )

        received: list[Sse] = []
        async with stream(api) as events:
            writer_started = asyncio.Event()

            async def writer() -> None:
                writer_started.set()
                for n in range(writes):
                    doc = "r1" if n % 2 else "r2"
                    await run(reactor, todo_job(doc, add(str(n)), key=f"w{n}"))

            writing = asyncio.create_task(writer())
            await writer_started.wait()
            received += [m for m in [await events.next() for _ in range(3)] if m]
        await behind(len(received) + 3)
        # Reconnects while writes go on: the header first, then the query
        # parameter (for clients that cannot set headers).
        assert received[-1].id is not None
        async with stream(api, headers={"Last-Event-ID": received[-1].id}) as events:
            received += [m for m in [await events.next() for _ in range(4)] if m]
        await behind(len(received) + 3)
        assert received[-1].id is not None
        async with stream(api, {"last_event_id": received[-1].id}) as events:
            await writing
            expected = [event_id(p) for p, _ in await log_after(reactor, start)]
            assert len(expected) == writes
            if received[-1].id != expected[-1]:
                received += await events.until(lambda m: m.id == expected[-1])
        assert [m.id for m in await watching] == expected
    assert [m.event for m in received] == ["operation"] * writes
    assert [m.id for m in received] == expected


@pytest.mark.usefixtures("worker")
async def test_a_client_that_stops_reading_overflows_while_another_keeps_receiving(
    reactor: Reactor,
) -> None:
    await run(reactor, create("big"))
    start = await OperationIndex(reactor.db).head()
    jobs, per_job = 20, 100
    config = EventStreamConfig(max_queued=400)
    app = create_app(reactor)
    configure_events(app, config)
    server = ApiServer(app)
    # Small socket buffers on both ends (accepted sockets inherit the
    # listener's): a client that stops reading is felt after a few hundred
    # events, not megabytes.
    server._socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    small = httpx.AsyncHTTPTransport(socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    async with (
        server,
        httpx.AsyncClient(base_url=server.url, timeout=WAIT_S) as api,
        httpx.AsyncClient(base_url=server.url, timeout=WAIT_S, transport=small) as stalled_api,
        stream(stalled_api) as stalled,
        stream(api) as reading,
    ):
        # The other client reads all along; the stalled one reads nothing
        # until the server gave up on it.
        total = jobs * per_job
        receiving = asyncio.create_task(reading.until(lambda m: m.data.get("index") == total - 1))
        jobs_run = [
            todo_job("big", *[add(f"{j}-{i}", "x" * 200) for i in range(per_job)], key=f"j{j}")
            for j in range(jobs)
        ]
        writing = asyncio.create_task(run(reactor, *jobs_run))
        feed = feed_of_app(app)
        assert feed is not None
        await wait_until(lambda: _true_when(feed.overflows == 1), WAIT_S, "the overflow")
        # What reached it: a prefix of the log, the overflow naming the last
        # id it was sent, then the end.
        taken: list[Sse] = []
        while (message := await stalled.next()) is not None:
            taken.append(message)
        await writing
        expected = [event_id(p) for p, _ in await log_after(reactor, start)]
        assert len(expected) == total
        got = await receiving
        assert [m.id for m in got] == expected  # all of them, in order, never overflowed
        assert feed.overflows == 1

        assert taken and taken[-1].event == "overflow", [m.event for m in taken[-3:]]
        delivered = [m.id for m in taken[:-1]]
        assert all(m.event == "operation" for m in taken[:-1])
        assert len(delivered) < len(expected)
        assert delivered == expected[: len(delivered)]
        resume = taken[-1].data["last_event_id"]
        assert resume == (delivered[-1] if delivered else event_id(start))
        # It resumes from there and gets the rest.
        async with stream(api, headers={"Last-Event-ID": resume}) as again:
            rest = await again.until(lambda m: m.id == expected[-1])
        assert delivered + [m.id for m in rest] == expected


@pytest.mark.usefixtures("worker")
async def test_a_bad_last_event_id_answers_400_naming_it(reactor: Reactor) -> None:
    await run(reactor, create("b1"))
    async with serving(reactor) as (_, api):
        for headers, params, field_name in (
            ({"Last-Event-ID": "nonsense"}, None, "Last-Event-ID"),
            ({"Last-Event-ID": "1.2.3"}, None, "Last-Event-ID"),
            (None, {"last_event_id": "-1.5"}, "last_event_id"),
            (None, {"last_event_id": f"{2**64}.1"}, "last_event_id"),
            # Well formed, but past the end of this log.
            ({"Last-Event-ID": f"{2**40}.1"}, None, "Last-Event-ID"),
        ):
            answer = await api.get("/v1/events", headers=headers, params=params)
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["field"] == field_name


@pytest.mark.usefixtures("worker")
async def test_auth_401_without_a_token_and_a_type_claim_bounds_the_events(
    reactor: Reactor,
) -> None:
    auth = JwtHandler(secret=SECRET)
    drives_only = jwt.encode(
        {"sub": "dora", "exp": int(time.time()) + 600, "document_types": [DRIVE]}, SECRET
    )
    bearer = {"authorization": f"Bearer {drives_only}"}
    async with serving(reactor, auth=auth) as (_, api):
        answer = await api.get("/v1/events")
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"]["field"] == "authorization"
        answer = await api.get("/v1/events", params={"type": TODO}, headers=bearer)
        assert answer.status_code == 403, answer.text
        async with stream(api, headers=bearer) as events:
            await run(reactor, create("t1"))
            await run(reactor, create("d1", DRIVE))
            got = await events.until(lambda m: m.event == "operation")
            assert described(got) == [("d1", "CREATE_DOCUMENT")]
        # A stream ends when its token expires, naming where to resume.
        brief = jwt.encode({"sub": "dora", "exp": int(time.time()) + 2}, SECRET)
        now = await OperationIndex(reactor.db).head()
        async with stream(api, headers={"authorization": f"Bearer {brief}"}) as events:
            got = await events.until(lambda m: m.event != "operation")
            assert got[-1].event == "expired"
            assert got[-1].data["last_event_id"] == event_id(now)  # nothing was sent
            assert await events.next() is None


async def test_idle_streams_get_pings_and_end_with_the_server_and_with_their_client(
    reactor: Reactor,
) -> None:
    config = EventStreamConfig(keepalive_s=0.05)
    app = create_app(reactor)
    configure_events(app, config)
    server = ApiServer(app)
    await server.start()
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT_S) as api:
        async with stream(api) as gone:
            pass
        async with stream(api) as idle:
            async with asyncio.timeout(WAIT_S):
                async for line in idle._lines:
                    if line.startswith(":"):
                        break
            assert line == ": ping"
            feed = feed_of_app(app)
            assert feed is not None
            # The closed client's reader is gone; the open one remains.
            await wait_until(
                lambda: _true_when(feed.readers == 1), WAIT_S, "the closed stream's cleanup"
            )
            await server.stop()  # returns: the open stream does not hold it
            assert await idle.next() is None
            assert idle.ended
    del gone


async def _true_when(value: bool) -> bool:
    return value
