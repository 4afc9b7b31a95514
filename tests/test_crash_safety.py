"""Crashes and competing workers never lose or duplicate an operation."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

from reactor.api.reactor import Reactor
from reactor.domain.jobs import JobStatus
from reactor.domain.workflow_io import BatchConfig
from reactor.storage.database import Database
from tests.conftest import Stack, spawn_worker, wait_polling, wait_until

DOCS = [f"doc-{n}" for n in range(5)]


def creates() -> list[dict[str, Any]]:
    return [
        {
            "key": f"create-{d}",
            "document_id": d,
            "scope": "document",
            "actions": [
                {"type": "CREATE_DOCUMENT", "input": {"document_type": "powerhouse/todo-list"}}
            ],
        }
        for d in DOCS
    ]


def item_jobs(prefix: str, count: int, actions_per_job: int = 2) -> list[dict[str, Any]]:
    return [
        {
            "key": f"{prefix}-{n}",
            "document_id": DOCS[n % len(DOCS)],
            "actions": [
                {
                    "type": "ADD_TODO_ITEM",
                    "input": {"id": f"{prefix}-{n}-{a}", "text": f"item {n}.{a}"},
                }
                for a in range(actions_per_job)
            ],
        }
        for n in range(count)
    ]


async def assert_log_is_exact(db: Database, expected_jobs: int, actions_per_job: int) -> None:
    """Every job applied once, its operations written once, indices contiguous."""
    async with db.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT document_id, idx, job_id, action->'input'->>'id' AS item "
            "FROM reactor_operations WHERE scope = 'global' ORDER BY document_id, idx"
        )
        applied = await conn.fetchval(
            "SELECT count(*) FROM reactor_applied_jobs WHERE status = 'applied' "
            "AND coordinates->0->>'scope' = 'global'"
        )
    assert applied == expected_jobs
    assert len(rows) == expected_jobs * actions_per_job
    items = Counter(r["item"] for r in rows)
    assert max(items.values()) == 1, "an action was applied twice"
    per_job = Counter(r["job_id"] for r in rows)
    assert set(per_job.values()) == {actions_per_job}
    by_doc: dict[str, list[int]] = {}
    for r in rows:
        by_doc.setdefault(r["document_id"], []).append(r["idx"])
    for doc, indices in by_doc.items():
        assert indices == list(range(len(indices))), f"{doc}: indices not contiguous"


async def count_global_ops(db: Database) -> int:
    async with db.pool.acquire() as conn:
        n: int = await conn.fetchval(
            "SELECT count(*) FROM reactor_operations WHERE scope = 'global'"
        )
        return n


async def test_sigkill_mid_batch_then_new_worker_completes_exactly_once(
    stack: Stack, reactor: Reactor, db: Database, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    reactor.config.batch = BatchConfig(chunk_size=10, max_parallel_chunks=2, heartbeat_timeout_s=3)
    first = spawn_worker(stack, database_url, task_queue, tmp_path / "w1.log")
    try:
        setup = await reactor.execute_batch({"jobs": creates()})
        await reactor.wait_for_batch(setup.batch_id)
        result = await reactor.execute_batch({"jobs": item_jobs("k", 200)})

        async def some_written() -> bool:
            return await count_global_ops(db) >= 40

        await wait_until(some_written, 60, "the first worker to apply some jobs")
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        written_at_kill = await count_global_ops(db)
        assert written_at_kill < 400, "the batch finished before the kill; the test proves nothing"
    finally:
        if first.poll() is None:
            first.kill()
    second = spawn_worker(stack, database_url, task_queue, tmp_path / "w2.log")
    try:
        jobs = await asyncio.wait_for(reactor.wait_for_batch(result.batch_id), 120)
    finally:
        second.terminate()
        second.wait(30)
    assert [j.status for j in jobs] == [JobStatus.READ_READY] * 200
    await assert_log_is_exact(db, 200, 2)


async def test_two_workers_on_the_same_documents_lose_and_duplicate_nothing(
    stack: Stack, reactor: Reactor, db: Database, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    # regular activities: any worker may take any chunk (local ones stay with
    # the worker that runs the workflow task)
    reactor.config.batch = BatchConfig(
        chunk_size=5, max_parallel_chunks=4, local_activity_max_jobs=0
    )
    logs = [tmp_path / f"w{n}.log" for n in range(2)]
    workers = [spawn_worker(stack, database_url, task_queue, log) for log in logs]
    try:
        # Both poll before anything is submitted, or the first one up may
        # take every chunk.
        for log in logs:
            await wait_polling(log)
        setup = await reactor.execute_batch({"jobs": creates()})
        await reactor.wait_for_batch(setup.batch_id)
        batches = await asyncio.gather(
            *(reactor.execute_batch({"jobs": item_jobs(f"b{b}", 40)}) for b in range(8))
        )
        results = await asyncio.wait_for(
            asyncio.gather(*(reactor.wait_for_batch(b.batch_id) for b in batches)), 120
        )
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)
    assert all(j.status is JobStatus.READ_READY for jobs in results for j in jobs)
    await assert_log_is_exact(db, 8 * 40, 2)
    async with db.pool.acquire() as conn:
        appliers = {
            r["applied_by"]
            for r in await conn.fetch("SELECT DISTINCT applied_by FROM reactor_applied_jobs")
        }
    assert {f":{w.pid}" for w in workers} == {a[a.rindex(":") :] for a in appliers}
