"""`Reactor.verify` and `reactor verify`: a document's log replayed from its
first operation reproduces every stored hash, keyframe and the view's head,
and a row changed behind the reactor's back is reported as exactly the
operation where stored and replayed states part."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from reactor.api.reactor import Reactor
from reactor.domain.errors import DocumentNotFoundError
from reactor.domain.hashing import state_hash
from reactor.domain.jobs import JobStatus
from tests.conftest import Stack, worker_env
from tests.support.cli import run_reactor
from tests.support.verify_after import MAX_DOCUMENTS, verify_database

pytestmark = pytest.mark.usefixtures("worker")

DOC = "verified"
# 25 jobs of 10 actions: keyframes (every 100 operations) at indices 99 and 199.
JOBS, ACTIONS = 25, 10


async def write_list(reactor: Reactor, document_id: str = DOC) -> None:
    jobs: list[dict[str, Any]] = [
        {
            "key": "create",
            "document_id": document_id,
            "scope": "document",
            "actions": [
                {"type": "CREATE_DOCUMENT", "input": {"document_type": "powerhouse/todo-list"}}
            ],
        }
    ]
    for j in range(JOBS):
        actions = []
        for a in range(ACTIONS):
            item = f"{j}-{a - a % 2}"
            if a % 2 == 0:
                actions.append({"type": "ADD_TODO_ITEM", "input": {"id": item, "text": f"é {j}"}})
            else:
                actions.append({"type": "UPDATE_TODO_ITEM", "input": {"id": item, "checked": True}})
        if j == 7:
            actions[3] = {"type": "SET_NAME", "input": {"name": "renamed"}}
        jobs.append({"key": f"j{j}", "document_id": document_id, "actions": actions})
    jobs.append(
        {
            "key": "rename",
            "document_id": document_id,
            "scope": "document",
            "actions": [{"type": "SET_NAME", "input": {"name": "named"}}],
        }
    )
    result = await reactor.execute_batch({"jobs": jobs})
    infos = await reactor.wait_for_batch(result.batch_id)
    assert [i.error for i in infos if i.status == JobStatus.FAILED] == []


@asynccontextmanager
async def tampered(
    reactor: Reactor, table: str, column: str, value: Any, where: str, *args: Any
) -> AsyncIterator[Any]:
    """Sets `column` of the one row `where` selects, and puts it back after
    (the suite verifies every test's documents when it ends). Yields the old value."""
    async with reactor.db.pool.acquire() as conn:
        old = await conn.fetchval(f"SELECT {column} FROM {table} WHERE {where}", *args)
        assert old is not None
        await conn.execute(
            f"UPDATE {table} SET {column} = ${len(args) + 1} WHERE {where}", *args, value
        )
        try:
            yield old
        finally:
            await conn.execute(
                f"UPDATE {table} SET {column} = ${len(args) + 1} WHERE {where}", *args, old
            )


OPERATION = "document_id = $1 AND scope = $2 AND branch = 'main' AND idx = $3"
VIEW = "document_id = $1 AND scope = $2 AND branch = 'main'"


async def test_a_document_written_across_keyframes_verifies(reactor: Reactor) -> None:
    await write_list(reactor)
    async with reactor.db.pool.acquire() as conn:
        frames = await conn.fetch(
            "SELECT idx FROM reactor_keyframes WHERE document_id = $1 ORDER BY idx", DOC
        )
    assert [f["idx"] for f in frames] == [99, 199]
    result = await reactor.verify(DOC)
    assert result.ok and result.difference is None
    # CREATE and SET_NAME in the document scope, every action in the global one.
    assert result.operations == 2 + JOBS * ACTIONS


async def test_a_tampered_operation_hash_is_that_operation(reactor: Reactor) -> None:
    await write_list(reactor)
    async with tampered(
        reactor, "reactor_operations", "hash", "0" * 64, OPERATION, DOC, "global", 137
    ) as real:
        result = await reactor.verify(DOC)
    assert not result.ok and result.difference is not None
    d = result.difference
    assert (d.kind, d.scope, d.branch, d.index) == ("operation", "global", "main", 137)
    assert (d.stored_hash, d.replayed_hash) == ("0" * 64, real)
    assert result.operations == 2 + 137
    assert (await reactor.verify(DOC)).ok


async def test_the_first_lane_that_differs_is_reported(reactor: Reactor) -> None:
    await write_list(reactor)
    async with (
        tampered(reactor, "reactor_operations", "hash", "1" * 64, OPERATION, DOC, "global", 3),
        tampered(reactor, "reactor_operations", "hash", "2" * 64, OPERATION, DOC, "document", 1),
    ):
        d = (await reactor.verify(DOC)).difference
    assert d is not None and (d.scope, d.index, d.stored_hash) == ("document", 1, "2" * 64)


async def test_a_tampered_view_state_is_reported_after_the_last_operation(
    reactor: Reactor,
) -> None:
    await write_list(reactor)
    async with reactor.db.pool.acquire() as conn:
        state = await conn.fetchval(
            f"SELECT state FROM reactor_document_states WHERE {VIEW}", DOC, "global"
        )
    changed = {**state, "stats": {**state["stats"], "checked": 0}}
    async with tampered(reactor, "reactor_document_states", "state", changed, VIEW, DOC, "global"):
        d = (await reactor.verify(DOC)).difference
    assert d is not None
    assert (d.kind, d.scope, d.index) == ("view", "global", JOBS * ACTIONS - 1)
    assert d.stored_hash == state_hash(changed)
    assert d.replayed_hash == state_hash(state)


async def test_a_tampered_view_hash_and_keyframe_are_reported(reactor: Reactor) -> None:
    await write_list(reactor)
    async with tampered(reactor, "reactor_document_states", "hash", "3" * 64, VIEW, DOC, "global"):
        d = (await reactor.verify(DOC)).difference
    assert d is not None and (d.kind, d.stored_hash) == ("view", "3" * 64)
    frame = "document_id = $1 AND scope = 'global' AND branch = 'main' AND idx = $2"
    async with tampered(reactor, "reactor_keyframes", "state", {"items": []}, frame, DOC, 199):
        d = (await reactor.verify(DOC)).difference
    assert d is not None
    assert (d.kind, d.index, d.stored_hash) == ("keyframe", 199, state_hash({"items": []}))


async def test_verifying_a_missing_document_raises(reactor: Reactor) -> None:
    with pytest.raises(DocumentNotFoundError):
        await reactor.verify("never-created")


async def test_cli_exits_0_when_it_matches_and_1_naming_the_operation(
    reactor: Reactor, stack: Stack, database_url: str, task_queue: str
) -> None:
    await write_list(reactor)
    env = worker_env(stack, database_url, task_queue)
    code, out, err = await run_reactor(env, "verify", DOC)
    assert (code, err) == (0, "")
    assert out.strip() == f"{DOC}: {2 + JOBS * ACTIONS} operation(s) replayed, every hash matches"
    async with tampered(
        reactor, "reactor_operations", "hash", "4" * 64, OPERATION, DOC, "global", 42
    ) as real:
        code, out, _ = await run_reactor(env, "verify", DOC)
        assert code == 1
        assert "operation global/main index 42" in out and "4" * 64 in out and real in out
        code, out, _ = await run_reactor(env, "verify", DOC, "--json")
    assert code == 1
    shown = json.loads(out)
    assert shown["ok"] is False
    assert shown["difference"]["index"] == 42 and shown["difference"]["replayed_hash"] == real
    code, _, err = await run_reactor(env, "verify", "never-created")
    assert code == 2 and "never-created" in err


async def test_the_suites_check_finds_a_document_that_does_not_verify(
    reactor: Reactor, database_url: str
) -> None:
    await write_list(reactor)
    assert await verify_database(database_url) == []
    async with tampered(
        reactor, "reactor_operations", "hash", "5" * 64, OPERATION, DOC, "global", 5
    ):
        differing = await verify_database(database_url)
    assert [(v.document_id, v.difference and v.difference.index) for v in differing] == [(DOC, 5)]


async def test_the_suites_check_samples_every_kth_document_past_its_bound(
    reactor: Reactor, database_url: str
) -> None:
    ids = [f"many-{n:03d}" for n in range(MAX_DOCUMENTS + 5)]  # every 2nd is checked
    result = await reactor.execute_batch(
        {
            "jobs": [
                {
                    "key": i,
                    "document_id": i,
                    "scope": "document",
                    "actions": [
                        {
                            "type": "CREATE_DOCUMENT",
                            "input": {"document_type": "powerhouse/todo-list"},
                        }
                    ],
                }
                for i in ids
            ]
        }
    )
    await reactor.wait_for_batch(result.batch_id)
    first = "document_id = $1 AND scope = 'document' AND branch = 'main' AND idx = 0"
    async with tampered(reactor, "reactor_operations", "hash", "6" * 64, first, ids[1]):
        assert await verify_database(database_url) == []
    async with tampered(reactor, "reactor_operations", "hash", "6" * 64, first, ids[2]):
        differing = await verify_database(database_url)
    assert [v.document_id for v in differing] == [ids[2]]
