"""Reactor.load between two real reactors (own databases, task queues and
workers): verbatim appends, merges of concurrent writes, and the named
errors that write nothing."""

from __future__ import annotations

from typing import Any

import pytest

from reactor.domain.errors import ValidationError
from reactor.domain.sync import LoadRequest, OperationRef, SyncOperation
from reactor.storage.operation_store import Position
from reactor.storage.sync_source import SyncSource
from tests.conftest import Stack
from tests.support.peers import Peer, exchange, exchange_both_ways, open_peers
from tests.support.rows import row_counts

TODO = "powerhouse/todo-list"


def add(item: str) -> dict[str, Any]:
    return {"type": "ADD_TODO_ITEM", "input": {"id": item, "text": item}}


async def created(peer: Peer) -> str:
    info = await peer.reactor.create(TODO)
    assert (await peer.reactor.wait_for_job(info.id)).status == "READ_READY"
    return info.document_id


async def todo(peer: Peer, doc: str) -> list[str]:
    document = await peer.reactor.get(doc)
    return [item["id"] for item in document.state["global"]["items"]]


async def heads(peer: Peer, doc: str) -> dict[str, str]:
    async with peer.module.database.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT scope, hash FROM reactor_document_states WHERE document_id = $1", doc
        )
    return {r["scope"]: r["hash"] for r in rows}


async def page_of(peer: Peer) -> list[LoadRequest]:
    page = await SyncSource(peer.module.database).read_page(Position(), 1000)
    return page.loads


async def test_a_document_loads_verbatim_with_equal_operations_and_hashes(stack: Stack) -> None:
    async with open_peers(stack, "a", "b") as (a, b):
        doc = await created(a)
        for n in range(3):
            info = await a.reactor.execute(doc, "main", [add(f"i{n}")])
            assert (await a.reactor.wait_for_job(info.id)).status == "READ_READY"
        _, sent = await exchange(a, b, Position())
        assert sent == 4  # CREATE_DOCUMENT and three items
        assert await todo(b, doc) == ["i0", "i1", "i2"]
        assert await a.operations(doc) == await b.operations(doc)
        assert await heads(a, doc) == await heads(b, doc)
        assert (await b.reactor.verify(doc)).ok


async def test_loading_twice_writes_nothing_the_second_time(stack: Stack) -> None:
    async with open_peers(stack, "a", "b") as (a, b):
        doc = await created(a)
        await a.reactor.wait_for_job((await a.reactor.execute(doc, "main", [add("x")])).id)
        loads = await page_of(a)
        for _ in range(2):
            result = await b.reactor.load_batch(loads, origin=a.reactor_id)
            for info in result.jobs.values():
                assert (await b.reactor.wait_for_job(info.id)).status == "READ_READY"
        assert await a.operations(doc) == await b.operations(doc)


async def test_concurrent_writes_on_both_sides_merge_and_converge(stack: Stack) -> None:
    async with open_peers(stack, "a", "b") as (a, b):
        doc = await created(a)
        pos_ab, _ = await exchange(a, b, Position())
        # Interleaved in time, written on each side without the other's.
        for n in range(4):
            for peer in (a, b):
                info = await peer.reactor.execute(doc, "main", [add(f"{peer.name}{n}")])
                assert (await peer.reactor.wait_for_job(info.id)).status == "READ_READY"
        undo = await b.reactor.execute(doc, "main", [{"type": "UNDO"}])
        assert (await b.reactor.wait_for_job(undo.id)).status == "READ_READY"
        await exchange_both_ways(a, b, pos_ab, rounds=4)
        expected = ["a0", "b0", "a1", "b1", "a2", "b2", "a3"]  # b3 undone
        assert await todo(a, doc) == await todo(b, doc) == expected
        assert await heads(a, doc) == await heads(b, doc)
        held_a = {op["action_id"] for ops in (await a.operations(doc)).values() for op in ops}
        held_b = {op["action_id"] for ops in (await b.operations(doc)).values() for op in ops}
        assert held_a == held_b
        merged = [op for op in (await b.operations(doc))["global"] if op["skip"] > 0]
        assert merged, "the second side merged"
        assert (await a.reactor.verify(doc)).ok and (await b.reactor.verify(doc)).ok


async def tampered(loads: list[LoadRequest], **changes: Any) -> list[LoadRequest]:
    last = loads[-1]
    ops = list(last.operations)
    ops[-1] = ops[-1].model_copy(update=changes)
    return [*loads[:-1], last.model_copy(update={"operations": ops})]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ("hash", "HashMismatchError"),
        ("after", "MissingOperationsError"),
    ],
)
async def test_a_bad_load_fails_by_name_and_writes_nothing(
    stack: Stack, change: str, error: str
) -> None:
    async with open_peers(stack, "a", "b") as (a, b):
        doc = await created(a)
        await exchange(a, b, Position())
        for n in range(2):
            await a.reactor.wait_for_job((await a.reactor.execute(doc, "main", [add(f"i{n}")])).id)
        loads = [load for load in await page_of(a) if load.scope == "global"]
        if change == "hash":
            loads = await tampered(loads, hash="0" * 64)
        else:
            loads = [loads[0].model_copy(update={"operations": loads[0].operations[1:]})]
            ghost = OperationRef(id="ghost", action_id="ghost", index=0, hash="h")
            loads = [loads[0].model_copy(update={"after": ghost})]
        before = await row_counts(b.database_url)
        result = await b.reactor.load_batch(loads, origin=a.reactor_id)
        (info,) = result.jobs.values()
        done = await b.reactor.wait_for_job(info.id)
        assert done.status == "FAILED"
        assert done.error is not None and done.error.type == error
        after = await row_counts(b.database_url)
        written = {t: after[t] - before[t] for t in after if after[t] != before[t]}
        assert set(written) <= {"reactor_applied_jobs", "reactor_batches", "reactor_batch_jobs"}
        assert written.get("reactor_applied_jobs", 0) == 1  # the failure, recorded
        assert await todo(b, doc) == []


async def test_a_merge_over_the_rewind_limit_fails_and_writes_nothing(stack: Stack) -> None:
    async with open_peers(stack, "a", "b", configure=lambda b: b.with_max_rewind(2)) as (a, b):
        doc = await created(a)
        await exchange(a, b, Position())
        early = await a.reactor.execute(doc, "main", [add("early")])
        for n in range(3):
            await b.reactor.wait_for_job((await b.reactor.execute(doc, "main", [add(f"b{n}")])).id)
        await a.reactor.wait_for_job(early.id)
        loads = [load for load in await page_of(a) if load.scope == "global"]
        result = await b.reactor.load_batch(loads, origin=a.reactor_id)
        (info,) = result.jobs.values()
        done = await b.reactor.wait_for_job(info.id)
        assert done.status == "FAILED"
        assert done.error is not None and done.error.type == "ExcessiveReshuffleError"
        assert "3 operations" in done.error.message
        assert await todo(b, doc) == ["b0", "b1", "b2"]


async def test_bad_input_is_refused_naming_the_field(stack: Stack) -> None:
    async with open_peers(stack, "a", "b") as (a, b):
        doc = await created(a)
        await a.reactor.wait_for_job((await a.reactor.execute(doc, "main", [add("x")])).id)
        (_, load) = await page_of(a)
        op = load.operations[0]
        unknown = op.action.model_copy(update={"type": "NO_SUCH_ACTION"})
        bad_action = load.model_copy(
            update={"operations": [op.model_copy(update={"action": unknown})]}
        )
        cases: list[tuple[Any, str]] = [
            (bad_action, "loads[0].operations[0].action.type"),
            (load.model_copy(update={"document_type": "acme/nothing"}), "loads[0].document_type"),
            (
                load.model_copy(update={"operations": [op.model_copy(update={"index": 1})]}),
                "loads[0].after",
            ),
            ({"document_id": doc, "operations": [{"id": "x"}]}, "loads[0].operations[0]"),
        ]
        before = await row_counts(b.database_url)
        for bad, field in cases:
            with pytest.raises(ValidationError) as err:
                await b.reactor.load_batch([bad], origin=a.reactor_id)
            assert err.value.field is not None and err.value.field.startswith(field), (field, err)
        big = op.action.model_copy(update={"input": {"id": "y", "text": "x" * 300_000}})
        oversize = load.model_copy(update={"operations": [op.model_copy(update={"action": big})]})
        with pytest.raises(ValidationError) as err:
            await b.reactor.load_batch([oversize], origin=a.reactor_id)
        assert err.value.field == "loads[0].operations[0].action.input"
        assert await row_counts(b.database_url) == before


async def test_load_takes_one_lane_and_returns_its_job(stack: Stack) -> None:
    async with open_peers(stack, "a", "b") as (a, b):
        doc = await created(a)
        await exchange(a, b, Position())
        await a.reactor.wait_for_job((await a.reactor.execute(doc, "main", [add("x")])).id)
        (load,) = [load for load in await page_of(a) if load.scope == "global"]
        ops: list[SyncOperation] = load.operations
        shifted = [ops[0].model_copy(update={"index": 7})]
        with pytest.raises(ValidationError) as err:
            await b.reactor.load(doc, "main", shifted, origin=a.reactor_id)  # no `after`
        assert err.value.field == "after"
        with pytest.raises(ValidationError) as err:
            elsewhere = OperationRef(id="o", action_id="a", index=3, hash="h")
            await b.reactor.load(doc, "main", shifted, after=elsewhere, origin=a.reactor_id)
        assert err.value.field == "after.index"
        info = await b.reactor.load(doc, "main", ops, after=load.after, origin=a.reactor_id)
        done = await b.reactor.wait_for_job(info.id)
        assert done.status == "READ_READY"
        assert done.consistency_token is not None
        assert await todo(b, doc) == ["x"]
