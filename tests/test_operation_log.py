"""OperationStore.get_since: a document's operations of one scope and
branch from a revision on, paged by index."""

from __future__ import annotations

from typing import Any

import pytest

from reactor.api.reactor import Reactor

pytestmark = pytest.mark.usefixtures("worker")


def add(doc: str, n: int, branch: str = "main") -> dict[str, Any]:
    return {
        "key": f"{branch}-{n}",
        "document_id": doc,
        "branch": branch,
        "actions": [{"type": "ADD_TODO_ITEM", "input": {"id": str(n), "text": f"item {n}"}}],
    }


async def run(reactor: Reactor, jobs: list[dict[str, Any]]) -> None:
    result = await reactor.execute_batch({"jobs": jobs})
    infos = await reactor.wait_for_batch(result.batch_id)
    assert [i.status.value for i in infos] == ["READ_READY"] * len(jobs)


async def test_get_since_returns_one_scopes_operations_from_a_revision_in_pages(
    reactor: Reactor,
) -> None:
    await reactor.wait_for_job((await reactor.create("powerhouse/todo-list", document_id="gs")).id)
    await run(reactor, [add("gs", n) for n in range(5)])
    store = reactor.operation_store

    tail = await store.get_since("gs", "global", "main", 2)
    assert [o.index for o in tail.results] == [2, 3, 4]
    assert [o.action.input["id"] for o in tail.results] == ["2", "3", "4"]
    assert tail.next_cursor is None  # no limit: everything in one page

    first = await store.get_since("gs", "global", "main", 0, limit=2)
    assert [o.index for o in first.results] == [0, 1]
    assert first.next_cursor == 2
    second = await store.get_since("gs", "global", "main", first.next_cursor, limit=2)
    assert [o.index for o in second.results] == [2, 3]
    last = await store.get_since("gs", "global", "main", second.next_cursor or 0, limit=2)
    assert [o.index for o in last.results] == [4]
    assert last.next_cursor is None

    # The document scope holds the creation only; past the end there is nothing.
    [created] = (await store.get_since("gs", "document", "main", 0)).results
    assert created.action.type == "CREATE_DOCUMENT"
    assert (await store.get_since("gs", "global", "main", 5)).results == []
    assert (await store.get_since("gs", "global", "other-branch", 0)).results == []
