"""Subscriptions read the reactor's one change feed, against a real
reactor, PostgreSQL and Temporal: a subscription whose callback is too slow
for its bounded queue overflows, catches up from the database and still gets
every change once, in order; and subscriptions and the HTTP event stream
share the module's one feed."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from reactor.api.http import create_app
from reactor.api.http.routes_events import feed_of_app
from reactor.api.http.server import ApiServer
from reactor.api.module import ReactorModule
from reactor.application.subscriptions import DocumentChange, SubscriptionManager
from reactor.domain.jobs import JobStatus
from reactor.storage.operation_index import OperationIndex
from tests.conftest import wait_until
from tests.support.http_api import add, create, todo_job

WAIT_S = 60


async def run(module: ReactorModule, *jobs: dict[str, Any]) -> None:
    result = await module.reactor.execute_batch({"jobs": list(jobs)})
    infos = await module.reactor.wait_for_batch(result.batch_id)
    assert all(i.status.done and i.status != JobStatus.FAILED for i in infos), infos


async def _true_when(value: bool) -> bool:
    return value


async def test_a_slow_subscription_overflows_catches_up_and_gets_every_change_once_in_order(
    module_factory: Any,
) -> None:
    module: ReactorModule = await module_factory()
    feed = module.change_feed
    manager = SubscriptionManager(feed, max_queued=2)
    changes: list[DocumentChange] = []
    release = asyncio.Event()

    async def slow(change: DocumentChange) -> None:
        changes.append(change)
        await release.wait()  # holds this subscription until the feed gave up on it

    start = await OperationIndex(module.database).head()
    unsubscribe = await manager.subscribe({"ids": ["slow", "end"]}, slow)
    try:
        await run(module, create("slow"))
        await wait_until(lambda: _true_when(len(changes) == 1), WAIT_S, "the first change")
        writes = 12
        for n in range(writes):
            await run(module, todo_job("slow", add(str(n)), key=f"w{n}"))
            await run(module, create(f"other-{n}"))  # filtered out: skipped, not queued
        await wait_until(lambda: _true_when(feed.overflows >= 1), WAIT_S, "the overflow")
        release.set()
        await run(module, create("end"))  # the last change: nothing may follow it
        await wait_until(
            lambda: _true_when(changes[-1].document_id == "end"), WAIT_S, "the last change"
        )
    finally:
        unsubscribe()
        await manager.close()
    rows = await OperationIndex(module.database).read(start, 100_000)
    expected = [op.id for _, op in rows if op.document_id in ("slow", "end")]
    assert len(expected) == writes + 2
    assert [op.id for c in changes for op in c.operations] == expected
    assert manager.reopened >= 1
    assert changes[0].kind == "created" and changes[-1].kind == "created"
    assert all(c.kind == "updated" and c.document is not None for c in changes[1:-1])
    # Caught up from the database, the document is the current one.
    items = changes[-2].document.state["global"]["items"] if changes[-2].document else []
    assert len(items) == writes


async def test_subscriptions_and_the_http_stream_read_the_module_s_one_feed(
    module_factory: Any,
) -> None:
    module: ReactorModule = await module_factory()
    feed = module.change_feed
    assert feed is module.reactor.change_feed
    assert module.subscription_manager.feed is feed
    app = create_app(module.reactor)
    assert feed_of_app(app) is feed

    got: list[DocumentChange] = []
    unsubscribe = await module.subscription_manager.subscribe({}, got.append)
    async with (
        ApiServer(app) as server,
        httpx.AsyncClient(base_url=server.url, timeout=WAIT_S) as api,
        api.stream("GET", "/v1/events") as response,
    ):
        assert response.status_code == 200
        # Both readers are on the one feed while both are open.
        await wait_until(lambda: _true_when(feed.readers == 2), WAIT_S, "both readers")
        await server.stop()  # ends the server's streams, not the feed
        await wait_until(lambda: _true_when(feed.readers == 1), WAIT_S, "the stream's end")
    # The subscription reads on.
    await run(module, create("after-the-server"))
    await wait_until(
        lambda: _true_when(any(c.document_id == "after-the-server" for c in got)),
        WAIT_S,
        "a change after the server stopped",
    )
    unsubscribe()
    await wait_until(lambda: _true_when(feed.readers == 0), WAIT_S, "no reader")
