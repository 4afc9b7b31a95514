"""End to end through Temporal into PostgreSQL: documents, operations,
ordering and failure semantics of batches."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reactor.api.reactor import Reactor
from reactor.application.replay import rebuild_state
from reactor.domain.errors import ShutdownError
from reactor.domain.jobs import MAX_ERROR_MESSAGE, JobStatus

pytestmark = pytest.mark.usefixtures("worker")


def create(key: str, doc: str, doc_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "key": key,
        "document_id": doc,
        "scope": "document",
        "actions": [{"type": "CREATE_DOCUMENT", "input": {"document_type": doc_type, **extra}}],
    }


def todo(
    key: str,
    doc: str,
    actions: list[tuple[str, dict[str, Any]]],
    deps: list[str] = [],  # noqa: B006
) -> dict[str, Any]:
    return {
        "key": key,
        "document_id": doc,
        "actions": [{"type": t, "input": i} for t, i in actions],
        "depends_on": deps,
    }


async def run(reactor: Reactor, jobs: list[dict[str, Any]]) -> dict[str, Any]:
    result = await reactor.execute_batch({"jobs": jobs})
    infos = await reactor.wait_for_batch(result.batch_id)
    return {i.key: i for i in infos}


async def test_batch_creates_documents_and_applies_actions(reactor: Reactor) -> None:
    jobs = await run(
        reactor,
        [
            create("drive", "d1", "powerhouse/document-drive", slug="my-drive", name="Drive"),
            create("list", "l1", "powerhouse/todo-list", name="Groceries"),
            {
                "key": "file",
                "document_id": "d1",
                "actions": [
                    {
                        "type": "ADD_FILE",
                        "input": {
                            "id": "l1",
                            "name": "Groceries",
                            "document_type": "powerhouse/todo-list",
                        },
                    }
                ],
                "depends_on": ["drive", "list"],
            },
            todo("a", "l1", [("ADD_TODO_ITEM", {"id": "1", "text": "milk"})], ["list"]),
            todo(
                "b",
                "l1",
                [
                    ("ADD_TODO_ITEM", {"id": "2", "text": "eggs"}),
                    ("UPDATE_TODO_ITEM", {"id": "1", "checked": True}),
                ],
                ["a"],
            ),
        ],
    )
    assert {k: j.status for k, j in jobs.items()} == dict.fromkeys(jobs, JobStatus.READ_READY)
    doc = await reactor.get("l1")
    assert doc.header.document_type == "powerhouse/todo-list"
    assert doc.header.name == "Groceries"
    assert doc.header.revision["global"] == 3
    assert doc.state["global"]["stats"] == {"total": 2, "checked": 1, "unchecked": 1}
    assert [i["text"] for i in doc.state["global"]["items"]] == ["milk", "eggs"]
    drive = await reactor.get_by_slug("my-drive")
    assert drive.id == "d1"
    assert await reactor.get_children("d1") == ["l1"]
    assert await reactor.get_parents("l1") == ["d1"]
    found = await reactor.find(type="powerhouse/todo-list", parent_id="d1")
    assert [d.id for d in found.results] == ["l1"]
    token = jobs["b"].consistency_token
    assert token is not None
    assert [(c.scope, c.operation_index) for c in token.coordinates] == [
        ("global", 1),
        ("global", 2),
    ]


async def test_operations_are_contiguous_hashed_and_replay_to_the_stored_state(
    reactor: Reactor,
) -> None:
    await run(reactor, [create("c", "l2", "powerhouse/todo-list")])
    jobs = [
        todo(f"j{n}", "l2", [("ADD_TODO_ITEM", {"id": str(n), "text": f"item {n}"})])
        for n in range(30)
    ]
    jobs.append(todo("del", "l2", [("DELETE_TODO_ITEM", {"id": "3"})]))
    await run(reactor, jobs)
    page = await reactor.get_operations("l2", scope="global", limit=1000)
    ops = page.results
    assert [o.index for o in ops] == list(range(31))
    assert len({o.id for o in ops}) == 31
    # submission order on one document is kept
    assert [o.action.input["id"] for o in ops[:30]] == [str(n) for n in range(30)]
    doc = await reactor.get("l2")
    assert await reactor.operation_store.get_revisions("l2") == {"document": 1, "global": 31}
    assert ops[-1].hash == (await rebuild_state(reactor.db, reactor.registry, "l2", "global"))[1]
    for use_keyframes in (True, False):
        revision, digest, state = await rebuild_state(
            reactor.db, reactor.registry, "l2", "global", use_keyframes=use_keyframes
        )
        assert revision == 31
        assert state == doc.state["global"]
        assert digest == ops[-1].hash


async def test_failed_job_fails_its_dependents_and_the_rest_continue(reactor: Reactor) -> None:
    await run(
        reactor,
        [create("c", "l3", "powerhouse/todo-list"), create("c2", "l4", "powerhouse/todo-list")],
    )
    jobs = await run(
        reactor,
        [
            todo("bad", "l3", [("DELETE_TODO_ITEM", {"id": "nope"})]),
            todo("child", "l4", [("ADD_TODO_ITEM", {"id": "x", "text": "never"})], ["bad"]),
            todo("grandchild", "l4", [("ADD_TODO_ITEM", {"id": "y", "text": "never"})], ["child"]),
            todo("after-bad", "l3", [("ADD_TODO_ITEM", {"id": "ok", "text": "still runs"})]),
            todo("independent", "l4", [("ADD_TODO_ITEM", {"id": "z", "text": "runs"})]),
        ],
    )
    assert jobs["bad"].status is JobStatus.FAILED
    assert jobs["bad"].error is not None and "nope" in jobs["bad"].error.message
    assert jobs["child"].status is JobStatus.FAILED
    assert jobs["child"].error is not None and jobs["child"].error.dependency == "bad"
    assert jobs["grandchild"].error is not None and jobs["grandchild"].error.dependency == "child"
    assert jobs["after-bad"].status is JobStatus.READ_READY
    assert jobs["independent"].status is JobStatus.READ_READY
    l3 = await reactor.get("l3")
    assert [i["id"] for i in l3.state["global"]["items"]] == ["ok"]
    assert l3.header.revision["global"] == 1  # the failed job wrote nothing
    l4 = await reactor.get("l4")
    assert [i["id"] for i in l4.state["global"]["items"]] == ["z"]


async def test_reducer_error_midway_through_a_job_writes_nothing(reactor: Reactor) -> None:
    await run(reactor, [create("c", "l5", "powerhouse/todo-list")])
    jobs = await run(
        reactor,
        [
            todo(
                "j",
                "l5",
                [
                    ("ADD_TODO_ITEM", {"id": "1", "text": "a"}),
                    ("ADD_TODO_ITEM", {"id": "1", "text": "duplicate"}),
                ],
            )
        ],
    )
    assert jobs["j"].status is JobStatus.FAILED
    assert jobs["j"].error is not None
    assert "actions[1]" in jobs["j"].error.message
    assert (await reactor.get_operations("l5", scope="global")).results == []
    assert (await reactor.get("l5")).state["global"]["items"] == []


async def test_job_status_is_readable_after_the_workflow_closed(reactor: Reactor) -> None:
    result = await reactor.execute_batch({"jobs": [create("c", "l6", "powerhouse/todo-list")]})
    await reactor.wait_for_batch(result.batch_id)
    info = await reactor.get_job_status(result.jobs["c"].id)
    assert info.status is JobStatus.READ_READY
    assert info.key == "c"
    assert info.consistency_token is not None
    assert info.consistency_token.coordinates[0].scope == "document"


async def test_kill_refuses_new_writes_and_completed_awaits_started_batches(
    reactor: Reactor,
) -> None:
    result = await reactor.execute_batch({"jobs": [create("c", "l7", "powerhouse/todo-list")]})
    handle = reactor.kill()
    assert handle.is_shutdown
    with pytest.raises(ShutdownError):
        await reactor.execute_batch({"jobs": [create("c", "l8", "powerhouse/todo-list")]})
    await asyncio.wait_for(handle.completed, 60)
    status = await reactor.get_job_status(result.jobs["c"].id)
    assert status.status is JobStatus.READ_READY
    assert await reactor.document_view.get("l8") is None


async def test_a_10000_job_batch_travels_by_reference_and_completes(reactor: Reactor) -> None:
    """Above the inline limits the plan is stored in PostgreSQL and loaded by
    the workflow in pages; histories stay bounded by chunking."""
    docs = [f"big-{n}" for n in range(20)]
    await run(reactor, [create(f"c{n}", d, "powerhouse/todo-list") for n, d in enumerate(docs)])
    jobs = [
        todo(f"j{i}", docs[i % 20], [("ADD_TODO_ITEM", {"id": str(i), "text": "x"})])
        for i in range(10_000)
    ]
    result = await reactor.execute_batch({"jobs": jobs})
    async with reactor.db.pool.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT job_count FROM reactor_batches WHERE batch_id = $1", result.batch_id
        )
    assert stored == 10_000
    infos = await asyncio.wait_for(reactor.wait_for_batch(result.batch_id), 240)
    assert len(infos) == 10_000 and all(i.status is JobStatus.READ_READY for i in infos)
    async with reactor.db.pool.acquire() as conn:
        assert (
            await conn.fetchval("SELECT count(*) FROM reactor_operations WHERE scope = 'global'")
            == 10_000
        )
    handle = reactor.client.get_workflow_handle(f"batch-{result.batch_id}")
    events = [e async for e in handle.fetch_history_events()]
    assert len(events) < 400  # bounded: chunks of jobs per activity, not one per job


async def test_a_batch_of_100_action_jobs_completes_within_temporal_payload_limits(
    reactor: Reactor,
) -> None:
    """300 jobs of 100 actions run as one chunk. With one coordinate per
    operation their outcomes came to 2.7 MB, over Temporal's 2 MB payload
    limit: the activity's result was refused on every retry and the batch
    never finished. As one span per job they are a few tens of KB, and the
    consistency tokens still list every operation."""
    docs = [f"wide-{n}" for n in range(30)]
    await run(reactor, [create(f"c{n}", d, "powerhouse/todo-list") for n, d in enumerate(docs)])
    jobs = [
        todo(
            f"j{i}",
            docs[i % 30],
            [("ADD_TODO_ITEM", {"id": f"{i}-{a}", "text": "x"}) for a in range(100)],
        )
        for i in range(300)
    ]
    result = await reactor.execute_batch({"jobs": jobs})
    infos = await asyncio.wait_for(reactor.wait_for_batch(result.batch_id), 120)
    assert all(i.status is JobStatus.READ_READY for i in infos)
    for info in infos:
        j = int(info.key[1:])
        token = info.consistency_token
        assert token is not None
        first = 100 * (j // 30)  # the document's earlier jobs come first on its lane
        assert [(c.document_id, c.operation_index) for c in token.coordinates] == [
            (docs[j % 30], first + a) for a in range(100)
        ]
    status = await reactor.get_job_status(infos[-1].id)
    assert status.consistency_token is not None and infos[-1].consistency_token is not None
    assert status.consistency_token.coordinates == infos[-1].consistency_token.coordinates


async def test_long_error_messages_are_cut_and_a_large_result_is_paged(reactor: Reactor) -> None:
    """600 jobs fail with 5,000-character messages (the reducer names the
    missing item, whose id is that long). Each message is cut to 1,000
    characters; the views would still make a 780 KB result, so the workflow
    leaves them out and wait_for_batch pages through the `jobs` query."""
    docs = [f"err-{n}" for n in range(20)]
    await run(reactor, [create(f"c{n}", d, "powerhouse/todo-list") for n, d in enumerate(docs)])
    jobs = [
        todo(f"j{i}", docs[i % 20], [("DELETE_TODO_ITEM", {"id": f"{i}-" + "x" * 5000})])
        for i in range(600)
    ]
    result = await reactor.execute_batch({"jobs": jobs})
    infos = await asyncio.wait_for(reactor.wait_for_batch(result.batch_id), 120)
    assert [i.key for i in infos] == [f"j{i}" for i in range(600)]
    for info in infos:
        assert info.status is JobStatus.FAILED and info.error is not None
        assert len(info.error.message) <= MAX_ERROR_MESSAGE
        assert info.error.message.endswith("more characters)")
    summary = await reactor.client.get_workflow_handle(f"batch-{result.batch_id}").result()
    assert summary["failed"] == 600 and summary["jobs"] is None


async def test_concurrent_submissions_are_prepared_in_order_and_start_while_later_ones_wait(
    reactor: Reactor,
) -> None:
    """Batches submitted at once from one process go through validation,
    planning and storage one at a time, in submission order, so the first
    workflow starts before the last batch is planned (interleaved, every
    batch would be planned before any started)."""
    events: list[tuple[str, str]] = []
    store, start = reactor.ledger.store_batch, reactor._start

    async def recording_store(rows: Any) -> bool:
        events.append(("stored", rows.batch_id))
        return await store(rows)

    async def recording_start(sub: Any) -> Any:
        events.append(("starting", sub.batch_id))
        return await start(sub)

    reactor.ledger.store_batch = recording_store  # type: ignore[method-assign]
    reactor._start = recording_start  # type: ignore[method-assign]
    await run(reactor, [create(f"c{n}", f"ord-{n}", "powerhouse/todo-list") for n in range(6)])
    ids = [f"order-{n}" for n in range(6)]
    # 30 jobs each: stored by reference, so every batch is stored, then started.
    batches = [
        {
            "batch_id": b,
            "jobs": [
                todo(
                    f"{b}-{j}", f"ord-{j % 6}", [("ADD_TODO_ITEM", {"id": f"{b}-{j}", "text": "x"})]
                )
                for j in range(30)
            ],
        }
        for b in ids
    ]
    events.clear()
    results = await asyncio.gather(*(reactor.execute_batch(b) for b in batches))
    stored = [b for kind, b in events if kind == "stored"]
    assert stored == ids  # submission order
    assert events.index(("starting", ids[0])) < events.index(("stored", ids[-1]))
    for r in results:
        infos = await reactor.wait_for_batch(r.batch_id)
        assert {i.status for i in infos} == {JobStatus.READ_READY}


async def test_a_submission_queued_when_kill_comes_is_refused(reactor: Reactor) -> None:
    async with reactor._preparing:  # another submission is being prepared
        queued = asyncio.create_task(
            reactor.execute_batch({"jobs": [create("c", "l9", "powerhouse/todo-list")]})
        )
        await asyncio.sleep(0.05)
        assert not queued.done()
        handle = reactor.kill()
    with pytest.raises(ShutdownError):
        await queued
    await asyncio.wait_for(handle.completed, 60)
    assert await reactor.document_view.get("l9") is None
