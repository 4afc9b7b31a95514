"""Reactions across processes: NOTIFY wake-ups with polling as the safety
net, leases, poison streams, and the commit-visibility gap."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from reactor.domain.workflow_io import ReactionInput, ReactionStatus
from reactor.reactions.drain import ReactionDrainer
from reactor.reactions.router import reaction_workflow_id
from reactor.reactions.store import ReactionStore
from reactor.runtime.temporal import connect
from reactor.storage.database import Database
from reactor.storage.notify import NotifyListener, channel_name
from reactor.storage.operation_store import OperationStore, Position
from tests.conftest import Stack, spawn_worker, wait_until
from tests.support.direct import DirectWriter
from tests.support.reactions import SETUP, recording
from workflows.reaction import TASK_TIMEOUT, ReactionWorkflow


@pytest.fixture
async def calls_table(db: Database) -> Database:
    async with db.pool.acquire() as conn:
        await conn.execute(SETUP)
    return db


async def handled(db: Database, reaction: str) -> list[asyncpg.Record]:
    async with db.pool.acquire() as conn:
        return await conn.fetch(
            "SELECT op_id, document_id, pid, at FROM test_reaction_calls WHERE reaction = $1",
            reaction,
        )


def reaction_worker(
    stack: Stack, database_url: str, task_queue: str, log: Path, name: str, **env: str
) -> Any:
    return spawn_worker(
        stack,
        database_url,
        task_queue,
        log,
        {"REACTOR_PROCESSORS": f"tests.support.reactions:{name}", **env},
    )


async def status_query(
    stack: Stack, task_queue: str, name: str
) -> Callable[[], Awaitable[ReactionStatus]]:
    """Queries the reaction workflow's status, on one client however often it
    is called. A query waits while a drain holds the workflow task, up to its
    heartbeat (1.6 s, see TASK_TIMEOUT), so the helpers ask as few times as
    they can."""
    client = await connect(stack.temporal_address)
    handle = client.get_workflow_handle(reaction_workflow_id(task_queue, name))
    return lambda: handle.query(ReactionWorkflow.status)


async def reaction_idle(stack: Stack, task_queue: str, name: str) -> None:
    """Waits until the reaction workflow ran its first drain (now it sleeps)."""
    status = await status_query(stack, task_queue, name)

    async def started() -> bool:
        try:
            return (await status()).iterations >= 1
        except Exception:
            return False

    await wait_until(started, 60, f"reaction {name} to start")


def woken(status: ReactionStatus) -> int:
    """How often the reaction was woken rather than polled: drains woken in
    the worker (NOTIFY found one waiting) plus wake signals (it found none).
    Counted when a drain returns, after its idle time (3 s), and seen by a
    query once the workflow task completes (its heartbeat: up to 1.6 s later)."""
    return status.woken + status.wakes


async def woken_now(stack: Stack, task_queue: str, name: str) -> int:
    return woken(await (await status_query(stack, task_queue, name))())


async def wait_woken(stack: Stack, task_queue: str, name: str, above: int) -> None:
    status = await status_query(stack, task_queue, name)

    async def more() -> bool:
        return woken(await status()) > above

    await wait_until(more, 45, f"a notification to wake reaction {name}")


async def status_after_next_drain(stack: Stack, task_queue: str, name: str) -> ReactionStatus:
    """The reaction's status once the drain running now has returned (its
    counts are in)."""
    status = await status_query(stack, task_queue, name)
    latest = await status()
    start = latest.iterations

    async def next_drain() -> bool:
        nonlocal latest
        latest = await status()
        return latest.iterations > start

    await wait_until(next_drain, 45, f"reaction {name}'s drain to return")
    return latest


async def test_commit_in_one_process_wakes_the_reaction_in_another(
    stack: Stack, calls_table: Database, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    db = calls_table
    own_store = OperationStore(db, notify=True)
    writer = DirectWriter(db, instance_id=own_store.instance_id)  # this process's writer
    await writer.create_list("doc")
    mine: list[dict[str, Any]] = []
    dispose = await own_store.notify(mine.append)
    # Polls every 30 s: only NOTIFY can make it fast.
    worker = reaction_worker(
        stack, database_url, task_queue, tmp_path / "w.log", "recording", REACTOR_REACTION_POLL="30"
    )
    try:
        await reaction_idle(stack, task_queue, "recording")
        before = await woken_now(stack, task_queue, "recording")
        for n in range(3):
            await writer.add_items("doc", [f"n{n}"])

            async def woke(n: int = n) -> bool:
                return len(await handled(db, "recording")) == n + 1

            await wait_until(woke, 10, f"reaction to commit {n}")
        await wait_woken(stack, task_queue, "recording", before)  # not (only) the poll
    finally:
        worker.terminate()
        worker.wait(60)
        dispose()
    assert mine == []  # the writer's own process never hears its own commits


async def test_with_notify_off_the_poll_still_delivers(
    stack: Stack, calls_table: Database, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    db = calls_table
    writer = DirectWriter(db, notify=False)
    await writer.create_list("doc")
    worker = reaction_worker(
        stack,
        database_url,
        task_queue,
        tmp_path / "w.log",
        "recording",
        REACTOR_NOTIFY="0",
        REACTOR_REACTION_POLL="0.3",
    )
    try:
        await reaction_idle(stack, task_queue, "recording")
        await writer.add_items("doc", ["a", "b"])

        async def delivered() -> bool:
            return len(await handled(db, "recording")) == 2

        await wait_until(delivered, 20, "the poll to deliver")
        status = await status_after_next_drain(stack, task_queue, "recording")
        assert status.woken == 0  # the poll alone
    finally:
        worker.terminate()
        worker.wait(60)


async def test_a_job_too_big_to_list_its_events_wakes_the_reaction_by_its_range(
    stack: Stack, calls_table: Database, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    """200 operations' events would pass NOTIFY's 8,000 bytes: the commit is
    announced as its range and action types, and that wakes the reaction
    (which polls only every 30 s) like any small commit."""
    db = calls_table
    writer = DirectWriter(db)
    await writer.create_list("big")
    heard: list[dict[str, Any]] = []
    listener = NotifyListener(database_url, [channel_name()])
    listener.add_handler(lambda _ch, payload: heard.append(payload))
    await listener.start()
    worker = reaction_worker(
        stack, database_url, task_queue, tmp_path / "w.log", "recording", REACTOR_REACTION_POLL="30"
    )
    try:
        await reaction_idle(stack, task_queue, "recording")
        before = await woken_now(stack, task_queue, "recording")
        await writer.add_items("big", [f"item-{i:04d}" for i in range(200)])  # ~14 kB of events

        async def all_delivered() -> bool:
            return len(await handled(db, "recording")) == 200

        await wait_until(all_delivered, 10, "the oversize commit to be delivered")
        await wait_woken(stack, task_queue, "recording", before)  # by its NOTIFY
        await writer.add_items("big", ["small"])

        async def small_delivered() -> bool:
            return len(await handled(db, "recording")) == 201

        await wait_until(small_delivered, 10, "the next commit")
    finally:
        worker.terminate()
        worker.wait(60)
        await listener.stop()
    big, small = [p for p in heard if p["document_id"] == "big"]
    assert "events" not in big
    assert (big["scope"], big["index"], big["count"], big["types"]) == (
        "global",
        0,
        200,
        ["ADD_TODO_ITEM"],
    )
    assert [e["index"] for e in small["events"]] == [200]


async def test_listener_reconnects_after_its_backend_is_terminated(
    db: Database, database_url: str
) -> None:
    writer = DirectWriter(db)
    await writer.create_list("doc")
    heard: list[dict[str, Any]] = []
    listener = NotifyListener(database_url, [channel_name()])
    listener.add_handler(lambda _ch, payload: heard.append(payload))
    await listener.start()
    try:
        old_pid = listener.backend_pid
        async with db.pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", old_pid)

        async def reconnected() -> bool:
            return listener.reconnects >= 1 and listener.backend_pid != old_pid

        await wait_until(reconnected, 15, "the listener to reconnect")
        await writer.add_items("doc", ["after"])

        async def woke() -> bool:
            return any(
                p["job_id"].startswith("direct-") and p["events"][0]["type"] == "ADD_TODO_ITEM"
                for p in heard
            )

        await wait_until(woke, 5, "a notification after the reconnect")
    finally:
        await listener.stop()


async def test_two_workers_handle_500_operations_exactly_once(
    stack: Stack, calls_table: Database, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    db = calls_table
    writer = DirectWriter(db)
    docs = [f"d{n}" for n in range(20)]
    for d in docs:
        await writer.create_list(d)
    workers = [
        reaction_worker(stack, database_url, task_queue, tmp_path / f"w{n}.log", "recording")
        for n in range(2)
    ]
    try:
        await reaction_idle(stack, task_queue, "recording")
        for batch in range(25):
            await asyncio.gather(*(writer.add_items(d, [f"b{batch}"]) for d in docs))

        async def all_handled() -> bool:
            return len(await handled(db, "recording")) >= 500

        await wait_until(all_handled, 90, "500 operations handled")
        await asyncio.sleep(1.0)  # a duplicate would show up now
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(60)
    rows = await handled(db, "recording")
    assert len(rows) == 500
    assert len({r["op_id"] for r in rows}) == 500


async def test_a_killed_workers_lease_expires_and_the_other_redoes_its_work(
    stack: Stack, calls_table: Database, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    db = calls_table
    writer = DirectWriter(db)
    await writer.create_list("slow-doc")
    first = reaction_worker(stack, database_url, task_queue, tmp_path / "w1.log", "slow")
    try:
        await reaction_idle(stack, task_queue, "slow")
        await writer.add_items("slow-doc", [f"s{i}" for i in range(40)])  # 0.1 s each

        async def some() -> bool:
            return len(await handled(db, "slow")) >= 5

        await wait_until(some, 30, "the first worker to start on the stream")
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
    done_by_first = len(await handled(db, "slow"))
    assert done_by_first < 40
    second = reaction_worker(stack, database_url, task_queue, tmp_path / "w2.log", "slow")
    try:

        async def finished() -> bool:
            return len({r["op_id"] for r in await handled(db, "slow")}) == 40

        await wait_until(finished, 60, "the second worker to take the expired lease over")
    finally:
        second.terminate()
        second.wait(60)
    rows = await handled(db, "slow")
    assert {r["pid"] for r in rows} == {first.pid, second.pid}
    # at least once: only the operation in flight at the kill may repeat
    assert len(rows) - 40 <= 1


async def test_a_poison_stream_blocks_alone_and_can_be_unblocked(
    stack: Stack, calls_table: Database, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    db = calls_table
    writer = DirectWriter(db)
    for d in ("poison", "good-1", "good-2"):
        await writer.create_list(d)
    worker = reaction_worker(
        stack, database_url, task_queue, tmp_path / "w.log", "failing", REACTOR_REACTION_POLL="0.2"
    )
    store = ReactionStore(db)
    try:
        await reaction_idle(stack, task_queue, "failing")
        for d in ("poison", "good-1", "good-2"):
            await writer.add_items(d, ["1", "2"])

        async def settled() -> bool:
            blocked = await store.streams("failing", blocked_only=True)
            return len(await handled(db, "failing")) == 4 and len(blocked) == 1

        await wait_until(settled, 30, "good streams done and the poison stream blocked")
        [state] = await store.streams("failing", blocked_only=True)
        assert state.document_id == "poison" and state.attempts == 3
        assert (
            state.last_error is not None
            and "cannot handle ADD_TODO_ITEM on poison" in state.last_error
        )
        await writer.add_items("good-1", ["3"])  # the others keep flowing

        async def flowing() -> bool:
            return len(await handled(db, "failing")) == 5

        await wait_until(flowing, 15, "a later operation on a good stream")
        assert await store.unblock("failing", "poison")
        assert not await store.unblock("failing", "poison")

        async def blocked_again() -> bool:
            return len(await store.streams("failing", blocked_only=True)) == 1

        await wait_until(blocked_again, 15, "the retried poison stream to block again")
    finally:
        worker.terminate()
        worker.wait(60)


@pytest.mark.unverified  # holds a transaction open with an operation of its own
async def test_no_reader_passes_an_operation_whose_transaction_is_still_open(
    calls_table: Database, stack: Stack
) -> None:
    """Transaction A draws its ordinal and stays open; B commits later; the
    reaction must not advance past A's operation while A is open, and must
    handle both once A commits."""
    db = calls_table
    writer = DirectWriter(db)
    await writer.create_list("x")
    await writer.create_list("y")
    from reactor.api.reactor import Reactor

    drainer = ReactionDrainer(db, [recording], reactor=Reactor.__new__(Reactor))
    drainer.reactor.db = db  # the handler only needs the pool
    await drainer.setup()
    await drainer.drain("recording")
    held = await asyncpg.connect(db.url)
    try:
        tx = held.transaction()
        await tx.start()
        await OperationStore.force_xid(held)
        await held.execute(
            "INSERT INTO reactor_operations (tx_id, id, document_id, scope, branch, idx, ts, hash, action) "
            "VALUES (pg_current_xact_id(), 'held-op', 'x', 'global', 'main', 0, now(), 'h', $1::jsonb)",
            '{"id": "a1", "type": "ADD_TODO_ITEM", "input": {"id": "held", "text": "t"}, '
            '"scope": "global", "timestamp": "2026-11-21T00:00:00Z"}',
        )
        later = await writer.add_items("y", ["later"])
        assert later.last_position is not None
        result = await drainer.drain("recording")
        assert result.handled == 0  # B committed, but A is open: nothing may pass A
        async with db.pool.acquire() as conn:
            feed = await conn.fetchrow(
                "SELECT feed_tx::text::bigint AS tx, feed_ordinal FROM reactor_reactions WHERE name = 'recording'"
            )
        assert Position(feed["tx"], feed["feed_ordinal"]) < Position(*later.last_position)
        await tx.commit()
    finally:
        await held.close()
    result = await drainer.drain("recording")
    assert result.handled == 2
    assert sorted(r["document_id"] for r in await handled(db, "recording")) == ["x", "y"]


async def test_exactly_once_processor_output_commits_with_its_ack(calls_table: Database) -> None:
    """The handler writes through context.tx; a failure after writing rolls
    the output back with the ack, so the retry writes it exactly once."""
    from reactor.reactions.processor import ReactionContext, processor

    db = calls_table
    async with db.pool.acquire() as conn:
        await conn.execute("CREATE TABLE eo_output (op_id text PRIMARY KEY)")
    attempts: list[str] = []

    async def handler(op: Any, ctx: ReactionContext) -> None:
        assert ctx.tx is not None
        await ctx.tx.execute("INSERT INTO eo_output VALUES ($1)", op.id)
        attempts.append(op.id)
        if len(attempts) == 1:
            raise RuntimeError("crash after writing, before the ack")

    proc = processor(
        "eo", handler, action_types=["ADD_TODO_ITEM"], exactly_once=True, backoff_base=0.01
    )
    drainer = ReactionDrainer(db, [proc])
    await drainer.setup()
    writer = DirectWriter(db)
    await writer.create_list("eo-doc")
    await writer.add_items("eo-doc", ["a", "b"])
    first = await drainer.drain("eo")
    assert first.failed == 1 and first.handled == 0
    async with db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM eo_output") == 0  # rolled back
    await asyncio.sleep(0.05)  # past the backoff
    second = await drainer.drain("eo")
    assert second.handled == 2
    async with db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM eo_output") == 2
    assert len(attempts) == 3  # the first op was attempted twice, written once


async def test_reaction_workflows_are_findable_by_search_attributes(
    stack: Stack, calls_table: Database, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    worker = reaction_worker(stack, database_url, task_queue, tmp_path / "w.log", "recording")
    try:
        await reaction_idle(stack, task_queue, "recording")
        client = await connect(stack.temporal_address)
        wf_id = reaction_workflow_id(task_queue, "recording")
        query = f"ReactorStatus = 'REACTING' AND WorkflowId = '{wf_id}'"

        async def visible() -> bool:
            return [w.id async for w in client.list_workflows(query)] == [wf_id]

        await wait_until(visible, 30, "the reaction workflow in visibility")
    finally:
        worker.terminate()
        worker.wait(60)


async def test_reaction_runs_keep_a_short_task_timeout_so_queries_pass_a_waiting_drain(
    stack: Stack, calls_table: Database, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    """A query reaches the workflow only when its task (held open by the
    waiting drain) is heartbeated, at 80% of the task timeout: the router
    starts reactions with TASK_TIMEOUT and every continued run keeps it."""
    worker = reaction_worker(stack, database_url, task_queue, tmp_path / "w.log", "recording")
    try:
        await reaction_idle(stack, task_queue, "recording")
        client = await connect(stack.temporal_address)
        wf_id = reaction_workflow_id(task_queue, "recording")

        async def task_timeout(run_id: str | None = None) -> tuple[str, Any]:
            desc = await client.get_workflow_handle(wf_id, run_id=run_id).describe()
            config = desc.raw_description.execution_config
            return desc.run_id, config.default_workflow_task_timeout.ToTimedelta()

        assert (await task_timeout())[1] == TASK_TIMEOUT  # as the router starts it

        # A run started without it (Temporal's default, 10 s) that continues
        # as new after one drain: the next run gets TASK_TIMEOUT all the same.
        await client.get_workflow_handle(wf_id).terminate("restart with one iteration per run")
        started = await client.start_workflow(
            ReactionWorkflow.run,
            ReactionInput(name="recording", max_iterations=1),
            id=wf_id,
            task_queue=task_queue,
        )
        assert (await task_timeout(started.result_run_id))[1] == timedelta(seconds=10)

        async def continued() -> bool:
            return (await task_timeout())[0] != started.result_run_id

        await wait_until(continued, 60, "the reaction workflow to continue as new")
        assert (await task_timeout())[1] == TASK_TIMEOUT
    finally:
        worker.terminate()
        worker.wait(60)
