"""A job of thousands of actions does not stop the worker: while it is
reduced, other batches are applied and status queries answer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from reactor.api.module import ReactorModule
from reactor.domain.jobs import JobStatus, job_id_for
from tests.conftest import wait_until

TODO = "powerhouse/todo-list"
SMALL_BATCHES = 5


def create(key: str, doc: str) -> dict[str, Any]:
    return {
        "key": key,
        "document_id": doc,
        "scope": "document",
        "actions": [{"type": "CREATE_DOCUMENT", "input": {"document_type": TODO}}],
    }


def items(key: str, doc: str, count: int) -> dict[str, Any]:
    return {
        "key": key,
        "document_id": doc,
        "actions": [
            {"type": "ADD_TODO_ITEM", "input": {"id": f"{key}-{i}", "text": f"item {i}"}}
            for i in range(count)
        ],
    }


async def test_a_small_batch_and_a_query_go_through_while_a_big_job_is_reduced(
    module_factory: Callable[..., Awaitable[ReactorModule]],
) -> None:
    # The client and the worker share this event loop: a reduction that
    # kept it would hold back this test's own submission and queries too.
    module = await module_factory()
    reactor = module.reactor
    setup = await reactor.execute_batch({"jobs": [create("big", "big"), create("small", "small")]})
    await reactor.wait_for_batch(setup.batch_id)

    big = await reactor.execute_batch({"jobs": [items("big", "big", 3000)]})
    big_job = job_id_for(big.batch_id, 0)

    async def big_running() -> bool:
        return (await reactor.batch_summary(big.batch_id)).counts["RUNNING"] == 1

    await wait_until(big_running, 30, "the big job to start")
    # One small batch after another, each waited for, with a query between:
    # several round trips each, which a worker whose loop the big job held
    # would only run once it let go, after the big job's single write.
    for n in range(SMALL_BATCHES):
        small = await reactor.execute_batch({"jobs": [items(f"small{n}", "small", 1)]})
        [small_done] = await asyncio.wait_for(reactor.wait_for_batch(small.batch_id), 60)
        assert small_done.status is JobStatus.READ_READY
        summary = await reactor.batch_summary(big.batch_id)
        assert not summary.finished
        assert summary.counts["RUNNING"] == 1
    async with module.database.pool.acquire() as conn:
        big_written = await conn.fetchval(
            "SELECT count(*) FROM reactor_operations WHERE job_id = $1", big_job
        )
    assert big_written == 0  # all that happened while the big job was being reduced

    [big_done] = await asyncio.wait_for(reactor.wait_for_batch(big.batch_id), 120)
    assert big_done.status is JobStatus.READ_READY
    async with module.database.pool.acquire() as conn:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM reactor_operations WHERE job_id = $1", big_job
            )
            == 3000
        )
