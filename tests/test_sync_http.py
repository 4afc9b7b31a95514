"""The sync routes (/v1/sync/identity, /operations, /load) on a live server
over loopback, against a real reactor, PostgreSQL and Temporal, and the
`RemoteReactor` client talking to them: pages of the log as runs per lane
with their predecessors and dead annotations, paging, filters, echo
suppression per peer, refused input naming its field, authorization, and
the client's waits and failures."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest

from reactor.api.http import JwtHandler
from reactor.api.http.routes_events import event_id
from reactor.api.reactor import Reactor
from reactor.api.remote import RemoteReactor, RemoteRejectedError, RemoteUnavailableError
from reactor.domain.actions import Action
from reactor.domain.document import Operation
from reactor.domain.jobs import JobStatus
from reactor.domain.sync import LoadRequest, OperationRef, SyncOperation
from reactor.runtime.embedded import free_port
from reactor.runtime.stack import create_database
from reactor.storage.identity import reactor_id
from reactor.storage.operation_index import OperationIndex
from reactor.storage.operation_store import Position
from reactor.storage.sync_source import SyncSource
from tests.conftest import Stack
from tests.support.http_api import DRIVE, TODO, add, create, served, todo_job
from tests.support.workers import suite_builder

SECRET = "a-test-secret-of-at-least-32-bytes!!"
UNDO = {"type": "UNDO", "input": {}}


async def run(reactor: Reactor, *jobs: dict[str, Any], batch_id: str | None = None) -> None:
    request: dict[str, Any] = {"jobs": list(jobs)}
    if batch_id is not None:
        request["batch_id"] = batch_id
    result = await reactor.execute_batch(request)
    infos = await reactor.wait_for_batch(result.batch_id)
    assert all(i.status is JobStatus.READ_READY for i in infos), infos


async def lane(reactor: Reactor, doc: str, scope: str = "global") -> list[Operation]:
    page = await reactor.get_operations(doc, scope=scope, limit=1000)
    return list(page.results)


def shape(loads: list[dict[str, Any]]) -> list[tuple[str, str, list[int], int | None]]:
    """(document, scope, indexes, index of `after`) per run."""
    return [
        (
            load["document_id"],
            load["scope"],
            [op["index"] for op in load["operations"]],
            None if load["after"] is None else load["after"]["index"],
        )
        for load in loads
    ]


async def page(api: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    answer = await api.get("/v1/sync/operations", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


@asynccontextmanager
async def remote_of(
    api: httpx.AsyncClient, token: str | None = None
) -> AsyncIterator[RemoteReactor]:
    remote = RemoteReactor(str(api.base_url), token=token, timeout=30)
    try:
        yield remote
    finally:
        await remote.aclose()


async def position_of(reactor: Reactor, doc: str, index: int) -> Position:
    rows = await OperationIndex(reactor.db).read(Position(), 10_000)
    return next(p for p, op in rows if op.document_id == doc and op.index == index)


def token(**claims: Any) -> str:
    return jwt.encode({"exp": int(time.time()) + 600, **claims}, SECRET)


async def test_identity_is_the_databases_and_stable_across_calls(reactor: Reactor) -> None:
    async with served(reactor) as api, remote_of(api) as remote:
        first = (await api.get("/v1/sync/identity")).json()
        second = (await api.get("/v1/sync/identity")).json()
        assert first == second == {"reactor_id": await reactor_id(reactor.db)}
        assert await remote.identity() == first["reactor_id"]
        assert len(first["reactor_id"]) >= 16


@pytest.mark.usefixtures("worker")
async def test_a_page_groups_operations_into_runs_per_lane_and_pages_follow_on(
    reactor: Reactor,
) -> None:
    await run(reactor, create("a"))
    await run(reactor, create("b"))
    await run(reactor, todo_job("a", add("x"), add("y"), key="xy"))
    await run(reactor, todo_job("b", add("z"), key="z"))
    await run(reactor, todo_job("a", add("w"), key="w"))
    head = await OperationIndex(reactor.db).head()
    a_global = await lane(reactor, "a")
    async with served(reactor) as api:
        whole = await page(api)
        assert whole["reactor_id"] == await reactor_id(reactor.db)
        assert whole["more"] is False and whole["next"] == event_id(head)
        # One run per lane, in the order its first operation was written;
        # w follows y in its lane, so it extends the run of x and y.
        assert shape(whole["loads"]) == [
            ("a", "document", [0], None),
            ("b", "document", [0], None),
            ("a", "global", [0, 1, 2], None),
            ("b", "global", [0], None),
        ]
        assert whole["loads"][0]["document_type"] == TODO
        served_ops = whole["loads"][2]["operations"]
        assert [(o["id"], o["hash"], o["action"]["id"]) for o in served_ops] == [
            (o.id, o.hash, o.action.id) for o in a_global
        ]
        assert all(o["dead"] == [] and o["skip"] == 0 for o in served_ops)

        # Pages of two: runs cut at the page's end continue after the
        # operation the previous page ended with.
        pages = [await page(api, limit=2)]
        while pages[-1]["more"]:
            pages.append(await page(api, limit=2, after=pages[-1]["next"]))
        assert [shape(p["loads"]) for p in pages] == [
            [("a", "document", [0], None), ("b", "document", [0], None)],
            [("a", "global", [0, 1], None)],
            [("b", "global", [0], None), ("a", "global", [2], 1)],
            [],
        ]
        assert [p["more"] for p in pages] == [True, True, True, False]
        assert pages[-1]["next"] == pages[-2]["next"] == event_id(head)
        after = pages[2]["loads"][1]["after"]
        y = a_global[1]
        assert after == {"id": y.id, "action_id": y.action.id, "index": 1, "hash": y.hash}
        LoadRequest.model_validate(pages[2]["loads"][1])  # what a peer's load() takes


@pytest.mark.usefixtures("worker")
async def test_type_and_document_filters_and_dead_annotations(reactor: Reactor) -> None:
    await run(reactor, create("t1"), create("d1", DRIVE))
    await run(reactor, todo_job("t1", add("1"), add("2"), key="adds"))
    await run(reactor, todo_job("t1", UNDO, key="undo"))
    await run(reactor, create("t2"))
    head = await OperationIndex(reactor.db).head()
    async with served(reactor) as api:
        drives = await page(api, type=DRIVE)
        assert shape(drives["loads"]) == [("d1", "document", [0], None)]
        # The page read the whole log: it ends at the head, past the todo
        # lists' operations its filter left out.
        assert drives["more"] is False and drives["next"] == event_id(head)
        assert drives["loads"][0]["document_type"] == DRIVE
        one = await page(api, document="t1")
        assert shape(one["loads"]) == [
            ("t1", "document", [0], None),
            ("t1", "global", [0, 1, 2], None),
        ]
        # The UNDO's operation skips over the second item, which no
        # operation brings back: the peer is told it is dead.
        log = await lane(reactor, "t1")
        undo = one["loads"][1]["operations"][2]
        assert undo["skip"] == 1
        assert undo["dead"] == [log[1].action.id]
        assert [o["dead"] for o in one["loads"][1]["operations"][:2]] == [[], []]
        nothing = await page(api, document="nothing-here")
        assert nothing["loads"] == [] and nothing["next"] == event_id(head)
        # A page cut at its limit ends at its last operation.
        cut = await page(api, type=DRIVE, limit=1)
        assert shape(cut["loads"]) == [("d1", "document", [0], None)] and cut["more"] is True
        assert cut["next"] == event_id(await position_of(reactor, "d1", 0))
        rest = await page(api, type=DRIVE, limit=1, after=cut["next"])
        assert rest == {**rest, "loads": [], "more": False, "next": event_id(head)}
        todos = await page(api, type=TODO)
        assert {load["document_id"] for load in todos["loads"]} == {"t1", "t2"}


@pytest.mark.usefixtures("worker")
async def test_operations_a_peer_sent_are_not_served_back_to_it_but_merged_copies_are(
    reactor: Reactor,
) -> None:
    await run(reactor, create("e"))
    await run(reactor, todo_job("e", add("local-0"), key="l0"))
    merged = {**add("merged"), "context": {"merged": True}}
    # A batch id naming peerx as the origin, as its loads' batches do.
    await run(
        reactor,
        todo_job("e", add("from-peerx"), merged, key="from"),
        batch_id="sync.peerx.0123abcd",
    )
    await run(reactor, todo_job("e", add("local-3"), key="l3"))
    await run(reactor, todo_job("e", add("from-peerx-last"), key="last"), batch_id="sync.peerx.ff")
    head = await OperationIndex(reactor.db).head()
    log = await lane(reactor, "e")
    assert [o.action.input["id"] for o in log] == [
        "local-0",
        "from-peerx",
        "merged",
        "local-3",
        "from-peerx-last",
    ]
    async with served(reactor) as api:
        for_peerx = await page(api, peer="peerx", document="e")
        # The run breaks where peerx's own operation is left out, and the
        # next run names it as its predecessor (peerx holds it).
        assert shape(for_peerx["loads"]) == [
            ("e", "document", [0], None),
            ("e", "global", [0], None),
            ("e", "global", [2, 3], 1),
        ]
        assert for_peerx["loads"][2]["after"]["id"] == log[1].id
        # The cursor moves past a left-out operation that ends the page.
        assert for_peerx["next"] == event_id(head)
        for other in (await page(api, peer="peery", document="e"), await page(api, document="e")):
            assert shape(other["loads"]) == [
                ("e", "document", [0], None),
                ("e", "global", [0, 1, 2, 3, 4], None),
            ]
        # A peer whose id only starts like peerx's gets everything.
        similar = await page(api, peer="peer", document="e")
        assert shape(similar["loads"])[1] == ("e", "global", [0, 1, 2, 3, 4], None)


async def test_refused_input_names_its_field(reactor: Reactor) -> None:
    unstorable = {
        "id": "op",
        "index": 0,
        "timestamp": "2026-01-01T00:00:00Z",
        "hash": "h",
        "action": {"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "nul\x00"}},
    }
    async with served(reactor) as api:
        for params, status, field in (
            ({"after": "abc"}, 400, "after"),
            ({"after": "1.2.3"}, 400, "after"),
            ({"after": "-1.5"}, 400, "after"),
            ({"after": f"{2**40}.1"}, 400, "after"),  # past the end of this log
            ({"limit": 0}, 422, "limit"),
            ({"limit": 1001}, 422, "limit"),
            ({"peer": "not a peer!"}, 422, "peer"),
            ({"type": "bad\x00type"}, 422, "type"),
        ):
            answer = await api.get("/v1/sync/operations", params=params)
            assert answer.status_code == status, (params, answer.text)
            assert answer.json()["error"]["field"] == field, answer.text
        for body, field in (
            ({"origin": "peer x", "loads": []}, "origin"),
            ({"origin": "peerx"}, "loads"),
            (
                {"origin": "peerx", "loads": [{"document_id": "d", "operations": []}]},
                "loads[0].operations",
            ),
            # Text PostgreSQL cannot store, wherever it is.
            (
                {"origin": "peerx", "loads": [{"document_id": "a\x00b", "operations": []}]},
                "loads[0].document_id",
            ),
            (
                {"origin": "peerx", "loads": [{"document_id": "d", "operations": [unstorable]}]},
                "loads[0].operations[0].action.input.text",
            ),
        ):
            answer = await api.post("/v1/sync/load", json=body)
            assert answer.status_code == 422, answer.text
            assert answer.json()["error"]["field"] == field, answer.text
        answer = await api.post("/v1/sync/load", json={"origin": "peerx", "loads": []})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"reactor_id": await reactor_id(reactor.db), "jobs": []}


@pytest.mark.usefixtures("worker")
async def test_tokens_bound_what_a_peer_reads_and_loads(reactor: Reactor) -> None:
    await run(reactor, create("t1"), create("d1", DRIVE))
    read_only = token()  # no subject: it may read, not write
    drives_only = token(sub="peer", document_types=[DRIVE])
    todo_load = {
        "origin": "peerx",
        "loads": [
            {
                "document_id": "t1",
                "operations": [
                    {
                        "id": "op-1",
                        "index": 0,
                        "timestamp": "2026-01-01T00:00:00Z",
                        "hash": "h",
                        "action": add("1"),
                    }
                ],
            }
        ],
    }
    async with served(reactor, auth=JwtHandler(secret=SECRET)) as api:
        answer = await api.get("/v1/sync/operations")
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"]["field"] == "authorization"
        bearer = {"authorization": f"Bearer {read_only}"}
        answer = await api.get("/v1/sync/operations", headers=bearer)
        assert answer.status_code == 200, answer.text
        assert {load["document_id"] for load in answer.json()["loads"]} == {"t1", "d1"}
        answer = await api.post("/v1/sync/load", json=todo_load, headers=bearer)
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["field"] == "authorization"

        bearer = {"authorization": f"Bearer {drives_only}"}
        answer = await api.get("/v1/sync/operations", headers=bearer)
        assert answer.status_code == 200, answer.text
        assert shape(answer.json()["loads"]) == [("d1", "document", [0], None)]
        answer = await api.get("/v1/sync/operations", params={"type": TODO}, headers=bearer)
        assert answer.status_code == 403, answer.text
        # The document already here is a todo list, whatever the load claims.
        todo_load["loads"][0]["document_type"] = DRIVE  # type: ignore[index]
        answer = await api.post("/v1/sync/load", json=todo_load, headers=bearer)
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["field"] == "document_type"

        async with remote_of(api, drives_only) as remote:
            got = await remote.operations(Position())
            assert [load.document_id for load in got.loads] == ["d1"]
        async with remote_of(api) as anonymous:
            with pytest.raises(RemoteRejectedError) as refused:
                await anonymous.identity()
            assert refused.value.status == 401 and refused.value.field == "authorization"


@pytest.mark.usefixtures("worker")
async def test_remote_reactor_reads_pages_and_waits_for_the_remotes_events(
    reactor: Reactor,
) -> None:
    await run(reactor, create("r1"))
    async with served(reactor) as api, remote_of(api) as remote:
        got = await remote.operations(Position(), limit=10, document_id="r1")
        assert got.reactor_id == await reactor_id(reactor.db)
        assert got.next == await OperationIndex(reactor.db).head() and got.more is False
        assert [(load.document_id, load.scope) for load in got.loads] == [("r1", "document")]

        # Nothing after the head: the wait ends empty-handed.
        assert await remote.wait_for_event(got.next, 0.5) is False
        # A write after the head ends it at once.
        waiting = asyncio.create_task(remote.wait_for_event(got.next, 60, document_id="r1"))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await run(reactor, todo_job("r1", add("1"), key="add"))
        assert await waiting is True
        # Filters apply: a write elsewhere does not count.
        head = await OperationIndex(reactor.db).head()
        await run(reactor, create("r2"))
        assert await remote.wait_for_event(head, 0.5, document_id="r1") is False
        assert await remote.wait_for_event(head, 60, document_type=TODO) is True

        with pytest.raises(RemoteRejectedError) as refused:
            await remote.wait_for_event(Position(2**40, 1), 5)
        assert refused.value.status == 400

    closed = RemoteReactor(f"http://127.0.0.1:{free_port()}", timeout=5)
    try:
        with pytest.raises(RemoteUnavailableError):
            await closed.identity()
        with pytest.raises(RemoteUnavailableError):
            await closed.operations(Position())
        with pytest.raises(RemoteUnavailableError):
            await closed.wait_for_event(Position(), 5)
    finally:
        await closed.aclose()


@asynccontextmanager
async def other_reactor(stack: Stack) -> AsyncIterator[Reactor]:
    """A second reactor with a database, task queue and worker of its own."""
    url = await create_database(stack.database_url, "t_")
    queue = "tq-" + uuid.uuid4().hex[:10]
    module = await suite_builder(url, stack.temporal_address, queue).build_module()
    try:
        async with module.create_worker():
            yield module.reactor
    finally:
        await module.close()


@pytest.mark.usefixtures("worker")
async def test_a_page_loaded_into_another_reactor_over_http_lands_verbatim(
    reactor: Reactor, stack: Stack
) -> None:
    await run(reactor, create("s"))
    await run(reactor, todo_job("s", add("1"), add("2"), key="adds"))
    source_id = await reactor_id(reactor.db)
    source_log = await lane(reactor, "s")
    async with other_reactor(stack) as target, served(target) as api, remote_of(api) as remote:
        target_id = await remote.identity()
        assert target_id != source_id
        sent = await SyncSource(reactor.db).read_page(Position(), 500, peer=target_id)
        jobs = await remote.load(source_id, sent.loads)
        assert [j.key for j in jobs] == ["load-0", "load-1"]
        assert all(j.status is JobStatus.READ_READY for j in jobs), jobs
        assert all(j.id.startswith(f"sync.{source_id}.") for j in jobs)
        assert [(o.id, o.index, o.hash) for o in await lane(target, "s")] == [
            (o.id, o.index, o.hash) for o in source_log
        ]
        # Loading the same page again writes nothing and succeeds.
        again = await remote.load(source_id, sent.loads)
        assert all(j.status is JobStatus.READ_READY for j in again), again
        assert len(await lane(target, "s")) == len(source_log)
        # The target does not serve the source its own operations back.
        back = await remote.operations(Position(), peer=source_id)
        assert back.loads == [] and back.next == await OperationIndex(target.db).head()
        assert len((await remote.operations(Position(), peer="someone-else")).loads) == 2

        # A load whose hash is not what the operation reduces to here fails
        # its job; the answer is still 200, with the job's error.
        head = source_log[-1]
        forged = LoadRequest(
            document_id="s",
            after=OperationRef(id=head.id, action_id=head.action.id, index=1, hash=head.hash),
            operations=[
                SyncOperation(
                    id="forged-op",
                    index=2,
                    timestamp=head.timestamp,
                    hash="not-the-hash",
                    action=Action(
                        type="ADD_TODO_ITEM",
                        input={"id": "3", "text": "tea"},
                        timestamp=head.timestamp,
                    ),
                )
            ],
        )
        # An operation that contradicts itself is refused outright, naming it.
        askew = forged.model_copy(deep=True)
        askew.operations[0].timestamp = head.timestamp + timedelta(seconds=1)
        with pytest.raises(RemoteRejectedError) as refused:
            await remote.load(source_id, [askew])
        assert refused.value.status == 422
        assert refused.value.field is not None and refused.value.field.startswith("loads[0]")
        failed = await remote.load(source_id, [forged])
        assert [j.status for j in failed] == [JobStatus.FAILED], failed
        assert failed[0].error is not None and failed[0].error.type == "HashMismatchError"
        assert len(await lane(target, "s")) == len(source_log)
