"""Custom read models: run before READ_READY, each operation exactly once,
also across worker crashes and competing drainers."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

from reactor.api.builder import ReactorBuilder
from reactor.application.read_models import ReadModelCoordinator
from reactor.domain.jobs import JobStatus
from reactor.domain.workflow_io import BatchConfig
from reactor.models import BUILTIN_MODELS
from reactor.read_models.todo_stats import TodoStatsPerDrive
from reactor.storage.database import Database
from reactor.storage.notify import READ_MODEL_CHANNEL, channel_name
from tests.conftest import Stack, spawn_worker, wait_until
from tests.support.read_models import CountingReadModel


async def deliveries(db: Database) -> tuple[int, int, int]:
    """(deliveries, distinct operations delivered, operations in the log)"""
    async with db.pool.acquire() as conn:
        total, distinct = await conn.fetchrow(
            "SELECT count(*), count(DISTINCT op_id) FROM test_rm_deliveries"
        )
        ops = await conn.fetchval("SELECT count(*) FROM reactor_operations")
    return total, distinct, ops


def todo_batch(n: int, docs: int = 4, prefix: str = "t") -> dict[str, Any]:
    jobs: list[dict[str, Any]] = [
        {
            "key": f"c{d}",
            "document_id": f"{prefix}{d}",
            "scope": "document",
            "actions": [
                {"type": "CREATE_DOCUMENT", "input": {"document_type": "powerhouse/todo-list"}}
            ],
        }
        for d in range(docs)
    ]
    jobs += [
        {
            "key": f"j{i}",
            "document_id": f"{prefix}{i % docs}",
            "actions": [{"type": "ADD_TODO_ITEM", "input": {"id": f"{i}", "text": f"item {i}"}}],
        }
        for i in range(n)
    ]
    return {"jobs": jobs}


# A drive `drv` that files the todo list `lst`.
DRIVE_FILING_A_LIST: list[dict[str, Any]] = [
    {
        "key": "drive",
        "document_id": "drv",
        "scope": "document",
        "actions": [
            {"type": "CREATE_DOCUMENT", "input": {"document_type": "powerhouse/document-drive"}}
        ],
    },
    {
        "key": "list",
        "document_id": "lst",
        "scope": "document",
        "actions": [
            {"type": "CREATE_DOCUMENT", "input": {"document_type": "powerhouse/todo-list"}}
        ],
    },
    {
        "key": "file",
        "document_id": "drv",
        "depends_on": ["drive", "list"],
        "actions": [
            {
                "type": "ADD_FILE",
                "input": {"id": "lst", "name": "L", "document_type": "powerhouse/todo-list"},
            }
        ],
    },
]


async def test_read_models_index_before_read_ready(module_factory: Any) -> None:
    stats = TodoStatsPerDrive()
    module = await module_factory(
        lambda b: b.with_read_model(stats).with_read_model(CountingReadModel())
    )
    reactor = module.reactor
    result = await reactor.execute_batch(
        {
            "jobs": [
                *DRIVE_FILING_A_LIST,
                {
                    "key": "items",
                    "document_id": "lst",
                    "depends_on": ["list"],
                    "actions": [
                        {"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "a"}},
                        {"type": "ADD_TODO_ITEM", "input": {"id": "2", "text": "b"}},
                        {"type": "UPDATE_TODO_ITEM", "input": {"id": "1", "checked": True}},
                    ],
                },
            ]
        }
    )
    jobs = await reactor.wait_for_batch(result.batch_id)
    assert all(j.status is JobStatus.READ_READY for j in jobs)
    # READ_READY already implies indexed: no waiting here.
    assert await TodoStatsPerDrive.for_drive(module.database, "drv") == {
        "lists": 1,
        "total": 2,
        "checked": 1,
        "unchecked": 1,
        "operations": 3,
    }
    total, distinct, ops = await deliveries(module.database)
    assert total == distinct == ops == 6


async def test_competing_drainers_deliver_each_operation_once(module_factory: Any) -> None:
    module = await module_factory(lambda b: b.with_read_model(CountingReadModel()))
    reactor = module.reactor
    result = await reactor.execute_batch(todo_batch(120))
    await reactor.wait_for_batch(result.batch_id)
    # Rewind the tracking row and let three coordinators (three "workers")
    # race to re-index: the row lock must serialize them.
    async with module.database.pool.acquire() as conn:
        await conn.execute("DELETE FROM test_rm_deliveries")
        await conn.execute(
            "UPDATE reactor_read_model_tracking SET last_tx = '0', last_ordinal = 0 WHERE name = 'counting'"
        )
    rm = CountingReadModel()
    coordinators = [ReadModelCoordinator(module.database, [rm], page=7) for _ in range(3)]
    head = await module.operation_index.head()
    await asyncio.gather(*(c.catch_up(head) for c in coordinators))
    total, distinct, ops = await deliveries(module.database)
    assert total == distinct == ops == 124


async def test_read_model_exactly_once_across_a_killed_worker(
    stack: Stack, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    reactor = await (
        ReactorBuilder()
        .with_document_models(BUILTIN_MODELS)
        .with_database(database_url)
        .with_temporal(stack.temporal_address, task_queue=task_queue)
        .with_read_model(CountingReadModel())
        .with_batch_config(BatchConfig(chunk_size=8, max_parallel_chunks=2, heartbeat_timeout_s=3))
        .build()
    )
    env_extra = {"REACTOR_READ_MODELS": "tests.support.read_models:CountingReadModel"}
    first = spawn_worker(stack, database_url, task_queue, tmp_path / "w1.log", env_extra)
    try:
        result = await reactor.execute_batch(todo_batch(160))

        async def some_indexed() -> bool:
            return (await deliveries(reactor.db))[0] >= 30

        await wait_until(some_indexed, 60, "some operations indexed")
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
    assert (await deliveries(reactor.db))[0] < 164, "batch finished before the kill"
    second = spawn_worker(stack, database_url, task_queue, tmp_path / "w2.log", env_extra)
    try:
        jobs = await asyncio.wait_for(reactor.wait_for_batch(result.batch_id), 120)
    finally:
        second.terminate()
        second.wait(30)
        await reactor.close()
    assert all(j.status is JobStatus.READ_READY for j in jobs)
    db = await Database.connect(database_url)
    try:
        total, distinct, ops = await deliveries(db)
    finally:
        await db.close()
    assert total == distinct == ops == 164


async def test_keyframe_interval_is_configurable_and_used_for_rebuilds(module_factory: Any) -> None:
    from reactor.application.replay import rebuild_state

    module = await module_factory(lambda b: b.with_write_cache_config(50, 2, keyframe_interval=10))
    result = await module.reactor.execute_batch(todo_batch(25, docs=1, prefix="kf"))
    await module.reactor.wait_for_batch(result.batch_id)
    async with module.database.pool.acquire() as conn:
        frames = [
            r["idx"]
            for r in await conn.fetch(
                "SELECT idx FROM reactor_keyframes WHERE document_id = 'kf0' AND scope = 'global' ORDER BY idx"
            )
        ]
    assert frames == [9, 19]
    with_frames = await rebuild_state(module.database, module.registry, "kf0", "global")
    without = await rebuild_state(
        module.database, module.registry, "kf0", "global", use_keyframes=False
    )
    assert with_frames == without
    at_15 = await rebuild_state(module.database, module.registry, "kf0", "global", revision=15)
    assert at_15[0] == 15 and len(at_15[2]["items"]) == 15


async def test_with_read_models_a_job_is_announced_read_ready_once_they_caught_up(
    module_factory: Any,
) -> None:
    """A worker with read models does not mark its commits read-ready; it
    announces the job on the read models' channel once they have indexed it
    (reactor/application/ready_notices.py). That announcement alone answers
    wait_for_job (the workflow's result is held back here), and by then the
    read model has the job."""
    stats = TodoStatsPerDrive()
    module = await module_factory(lambda b: b.with_read_model(stats))
    reactor = module.reactor
    setup = await reactor.execute_batch({"jobs": DRIVE_FILING_A_LIST})
    await reactor.wait_for_batch(setup.batch_id)
    seen: list[tuple[str, dict[str, Any]]] = []
    module.listener.add_handler(lambda channel, payload: seen.append((channel, payload)))
    never: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    reactor._batch_results.poll = lambda _batch_id: never
    job = await reactor.execute(
        "lst", "main", [{"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "a"}}]
    )
    info = await reactor.wait_for_job(job.id, timeout=30)
    assert info.status is JobStatus.READ_READY and not never.done()
    assert (await TodoStatsPerDrive.for_drive(module.database, "drv"))["total"] == 1
    about_job = [(channel, p) for channel, p in seen if p.get("job_id") == job.id]
    commits = [p for channel, p in about_job if channel == channel_name()]
    announced = [p for channel, p in about_job if channel == READ_MODEL_CHANNEL]
    assert [("read_ready" in p) for p in commits] == [False]
    assert [p["read_ready"] for p in announced] == [True]
    assert info.consistency_token is not None
    assert [c.operation_index for c in info.consistency_token.coordinates] == [0]
