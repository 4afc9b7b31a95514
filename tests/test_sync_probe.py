"""Sync under inputs and histories that stress it: documents deleted or
created on both sides, loads retried after their cause is gone, and bad
input over HTTP and from Python, which must name its field and write
nothing."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from reactor.api.builder import ReactorBuilder
from reactor.api.client import ReactorClientBuilder
from reactor.api.http.server import ApiServer
from reactor.api.remote import RemoteReactor, RemoteUnavailableError
from reactor.domain.actions import Action
from reactor.domain.errors import ValidationError
from reactor.domain.lane_reducer import LaneReducer
from reactor.domain.signing import Ed25519Signer, Ed25519Verifier
from reactor.domain.sync import LoadRequest
from reactor.storage.operation_store import Position
from reactor.storage.sync_source import SyncSource
from tests.conftest import Stack
from tests.support import versioned_counter as counter
from tests.support.peers import Peer, exchange, exchange_both_ways, open_peers
from tests.support.rows import row_counts

TODO = "powerhouse/todo-list"


def add(item: str) -> dict[str, Any]:
    return {"type": "ADD_TODO_ITEM", "input": {"id": item, "text": item}}


async def ready(peer: Peer, info: Any) -> None:
    done = await peer.reactor.wait_for_job(info.id, timeout=60)
    assert done.status == "READ_READY", done


async def created(peer: Peer, document_id: str | None = None) -> str:
    info = await peer.reactor.create(TODO, document_id=document_id)
    await ready(peer, info)
    return info.document_id


async def page_of(peer: Peer) -> list[LoadRequest]:
    return (await SyncSource(peer.module.database).read_page(Position(), 1000)).loads


async def header(peer: Peer, doc: str) -> dict[str, Any]:
    async with peer.module.database.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM reactor_documents WHERE id = $1", doc)
    assert row is not None
    return dict(row)


async def scope_state(peer: Peer, doc: str, scope: str = "document") -> dict[str, Any]:
    async with peer.module.database.pool.acquire() as conn:
        state = await conn.fetchval(
            "SELECT state::text FROM reactor_document_states WHERE document_id = $1 "
            "AND scope = $2 AND branch = 'main'",
            doc,
            scope,
        )
    assert state is not None
    parsed: dict[str, Any] = json.loads(state)
    return parsed


async def test_a_document_deleted_after_its_writes_reaches_a_peer_whole(stack: Stack) -> None:
    # One page holds the create, a write and the delete: loaded in the
    # order of the log, the write lands before the delete.
    async with open_peers(stack, "a", "b") as (a, b):
        doc = await created(a)
        await ready(a, await a.reactor.execute(doc, "main", [add("x")]))
        delete = {"type": "DELETE_DOCUMENT", "input": {}}
        await ready(a, await a.reactor.execute(doc, "main", [delete], scope="document"))
        _, sent = await exchange(a, b, Position())
        assert sent == 3
        assert await a.operations(doc) == await b.operations(doc)
        assert (await header(b, doc))["deleted"] is True


async def test_a_write_concurrent_with_a_delete_does_not_block_the_channel(stack: Stack) -> None:
    # a deletes while b writes: neither side may refuse the other's
    # operations for good, or every later operation of the channel waits.
    async with open_peers(stack, "a", "b") as (a, b):
        doc = await created(a)
        pos_ab, _ = await exchange(a, b, Position())
        delete = {"type": "DELETE_DOCUMENT", "input": {}}
        await ready(a, await a.reactor.execute(doc, "main", [delete], scope="document"))
        await ready(b, await b.reactor.execute(doc, "main", [add("late")]))
        await exchange_both_ways(a, b, pos_ab)
        held_a = {op["action_id"] for ops in (await a.operations(doc)).values() for op in ops}
        held_b = {op["action_id"] for ops in (await b.operations(doc)).values() for op in ops}
        assert held_a == held_b
        assert (await header(a, doc))["deleted"] and (await header(b, doc))["deleted"]


async def test_one_document_id_created_on_both_sides_converges(stack: Stack) -> None:
    # Two reactors may create a document under the same id (ids chosen by
    # the client): the second create must not fail every load of the lane.
    async with open_peers(stack, "a", "b") as (a, b):
        await created(a, "shared-doc")
        await created(b, "shared-doc")
        await ready(a, await a.reactor.execute("shared-doc", "main", [add("a")]))
        await ready(b, await b.reactor.execute("shared-doc", "main", [add("b")]))
        await exchange_both_ways(a, b, Position())
        doc_a = await a.reactor.get("shared-doc")
        doc_b = await b.reactor.get("shared-doc")
        assert doc_a.state == doc_b.state


async def test_a_load_retried_once_its_cause_is_gone_is_applied(stack: Stack) -> None:
    # A load batch's id is a digest of what it carries: the same page sent
    # again is the same batch. A sender retrying after a failure whose cause
    # may be gone names its attempt (a channel passes its failed rounds in a
    # row), or a channel whose page failed once would never move again.
    async with open_peers(stack, "a", "b") as (a, b):
        doc = await created(a)
        await ready(a, await a.reactor.execute(doc, "main", [add("x")]))
        create, write = await page_of(a)
        assert create.scope == "document" and write.scope == "global"
        first = await b.reactor.load_batch([write], origin=a.reactor_id)
        (info,) = first.jobs.values()
        failed = await b.reactor.wait_for_job(info.id, timeout=60)
        assert failed.status == "FAILED"  # the document is not here yet
        second = await b.reactor.load_batch([create], origin=a.reactor_id)
        await ready(b, second.jobs["load-0"])
        same = await b.reactor.load_batch([write], origin=a.reactor_id)
        assert same.batch_id == first.batch_id
        again = await b.reactor.load_batch([write], origin=a.reactor_id, attempt=1)
        assert again.batch_id != first.batch_id
        await ready(b, again.jobs["load-0"])
        assert await a.operations(doc) == await b.operations(doc)


async def test_duplicated_operation_ids_in_a_load_are_refused_naming_the_field(
    stack: Stack,
) -> None:
    async with open_peers(stack, "a", "b") as (a, b):
        doc = await created(a)
        for item in ("x", "y"):
            await ready(a, await a.reactor.execute(doc, "main", [add(item)]))
        create, write = await page_of(a)
        first, second = write.operations
        twice = write.model_copy(
            update={"operations": [first, second.model_copy(update={"id": first.id})]}
        )
        before = await row_counts(b.database_url)
        with pytest.raises(ValidationError) as err:
            await b.reactor.load_batch([create, twice], origin=a.reactor_id)
        assert err.value.field == "loads[1].operations[1].id"
        assert await row_counts(b.database_url) == before


async def test_bad_load_bodies_over_http_name_their_field_and_write_nothing(
    stack: Stack,
) -> None:
    async with open_peers(stack, "a", "b") as (a, b):
        doc = await created(a)
        await ready(a, await a.reactor.execute(doc, "main", [add("x")]))
        create, write = await page_of(a)
        good = write.model_dump(mode="json")
        op = good["operations"][0]

        def load(**changes: Any) -> dict[str, Any]:
            return {"origin": "peer-a", "loads": [{**good, **changes}]}

        def with_op(**changes: Any) -> dict[str, Any]:
            return load(operations=[{**op, **changes}])

        ghost = {"id": "p", "action_id": "p", "index": 0, "hash": "h"}
        deep: Any = "x"
        for _ in range(200):
            deep = {"d": deep}
        cases: list[tuple[Any, int, str]] = [
            ([], 422, "body"),
            ({"origin": "peer-a", "loads": "x"}, 422, "loads"),
            ({"origin": "peer-a", "loads": [{}]}, 422, "loads[0].document_id"),
            ({"origin": 5, "loads": []}, 422, "origin"),
            (load(operations={}), 422, "loads[0].operations"),
            (with_op(index=-1), 422, "loads[0].operations[0].index"),
            (with_op(skip=-1), 422, "loads[0].operations[0].skip"),
            (with_op(skip=5), 422, "loads[0].operations[0].skip"),
            (with_op(index="one"), 422, "loads[0].operations[0].index"),
            (with_op(timestamp="yesterday"), 422, "loads[0].operations[0].timestamp"),
            (with_op(action={**op["action"], "scope": "local"}), 422, "loads[0].operations[0]"),
            (load(scope="nowhere"), 422, "loads[0].scope"),
            (load(document_type="acme/none"), 422, "loads[0].document_type"),
            (load(after={**ghost, "index": -1}), 422, "loads[0].after.index"),
            (load(after=ghost), 422, "loads[0].after.index"),  # the operations start at 0
            (with_op(index=3), 422, "loads[0].after"),
            (with_op(action={**op["action"], "input": deep}), 422, "loads[0].operations[0]"),
            (with_op(dead=["a\x00b"]), 422, "loads[0].operations[0].dead[0]"),
            (with_op(dead="x"), 422, "loads[0].operations[0].dead"),
        ]
        before = await row_counts(b.database_url)
        async with httpx.AsyncClient(base_url=b.url, timeout=60) as api:
            for body, status, field in cases:
                answer = await api.post("/v1/sync/load", json=body)
                assert answer.status_code == status, (field, answer.text)
                error = answer.json()["error"]
                assert (error.get("field") or "").startswith(field), (field, error)
            for params, field in (
                ({"after": ""}, "after"),
                ({"after": "1.-1"}, "after"),
                ({"limit": "many"}, "limit"),
                ({"document": "d" * 10_000}, "document"),
                ({"type": "x" * 10_000}, "type"),
                ({"peer": "p\x00"}, "peer"),
            ):
                answer = await api.get("/v1/sync/operations", params=params)
                assert 400 <= answer.status_code < 500, (params, answer.text)
                assert answer.json()["error"].get("field") == field, (params, answer.text)
        assert await row_counts(b.database_url) == before


def short_answering_remote() -> FastAPI:
    """Another program on the remote's address: it answers every load with
    no jobs, and pages that are not pages."""
    app = FastAPI()

    @app.post("/v1/sync/load")
    async def load() -> dict[str, Any]:
        return {"reactor_id": "other", "jobs": []}

    @app.get("/v1/sync/operations")
    async def operations() -> dict[str, Any]:
        return {"reactor_id": "other", "next": "not a position", "more": False, "loads": []}

    @app.get("/v1/sync/identity")
    async def identity() -> dict[str, Any]:
        return {"id": "other"}

    return app


async def test_a_remote_that_acknowledges_fewer_loads_than_sent_fails_the_call(
    stack: Stack,
) -> None:
    # The push cursor moves only past loads the remote answered with a job.
    async with open_peers(stack, "a") as (a,), ApiServer(short_answering_remote()) as server:
        doc = await created(a)
        loads = await page_of(a)
        assert loads and loads[0].document_id == doc
        async with RemoteReactor(server.url) as remote:
            with pytest.raises(RemoteUnavailableError, match="0 jobs answer 1 loads"):
                await remote.load(a.reactor_id, loads)
            with pytest.raises(RemoteUnavailableError, match="cannot read"):
                await remote.operations(Position())
            with pytest.raises(RemoteUnavailableError, match="cannot read"):
                await remote.identity()


async def test_signed_writes_merged_on_one_side_load_on_the_other_with_verification(
    stack: Stack,
) -> None:
    # A merge re-appends a signed action after another state than the one
    # its author signed for: a verifying receiver must still take the
    # sender's merged copies, or two verifying reactors that both wrote
    # never converge.
    signer = Ed25519Signer()

    def verifying(builder: ReactorBuilder) -> ReactorBuilder:
        return builder.with_signature_verifier(Ed25519Verifier())

    async with open_peers(stack, "a", "b", configure=verifying) as (a, b):
        clients = {
            p.name: ReactorClientBuilder().with_reactor_module(p.module).with_signer(signer).build()
            for p in (a, b)
        }
        await clients["a"].create_empty(TODO, document_id="signed")
        pos_ab, _ = await exchange(a, b, Position())
        await clients["a"].execute("signed", "main", [add("a")])
        await clients["b"].execute("signed", "main", [add("b")])
        await exchange_both_ways(a, b, pos_ab)
        assert (await a.reactor.get("signed")).state == (await b.reactor.get("signed")).state


async def test_a_sender_claiming_other_indexes_cannot_store_a_skip_past_the_lane_start(
    stack: Stack,
) -> None:
    # `after` names this lane's head by id but claims another index: an
    # operation appended as sent would keep a skip reaching before index 0
    # (which `dead_covered` then reads from the end of the log).
    async with open_peers(stack, "a", "b") as (a, b):
        doc = await created(a)
        await ready(a, await a.reactor.execute(doc, "main", [add("x")]))
        await exchange(a, b, Position())
        (head,) = (await b.operations(doc))["global"]
        action = Action(type="ADD_TODO_ITEM", input={"id": "y", "text": "y"}, scope="global")
        lane = LaneReducer.initial(b.module.registry.get(TODO), "global")
        forged = {
            "id": "forged",
            "index": 6,
            "skip": 6,
            "timestamp": action.timestamp,
            "hash": lane.apply(action),  # the state its skip claims: nothing before it
            "action": action,
        }
        after = {"id": head["id"], "action_id": head["action_id"], "index": 5, "hash": head["hash"]}
        load = {"document_id": doc, "after": after, "operations": [forged]}
        info = (await b.reactor.load_batch([load], origin=a.reactor_id)).jobs["load-0"]
        await b.reactor.wait_for_job(info.id, timeout=60)
        async with httpx.AsyncClient(base_url=b.url, timeout=60) as api:
            served = await api.get("/v1/sync/operations")
        assert served.status_code == 200, served.text
        for op in (await b.operations(doc))["global"]:
            assert op["skip"] <= op["idx"], op


async def test_the_same_child_added_on_both_sides_converges(stack: Stack) -> None:
    # Both reactors add one child to one parent: the merged order holds two
    # ADD_RELATIONSHIP of that child, and the second must not fail the
    # lane's every load.
    async with open_peers(stack, "a", "b") as (a, b):
        parent = await created(a)
        child = await created(a)
        pos_ab, _ = await exchange(a, b, Position())
        relate = {"type": "ADD_RELATIONSHIP", "input": {"target_id": child}}
        for peer in (a, b):
            await ready(
                peer, await peer.reactor.execute(parent, "main", [relate], scope="document")
            )
        await exchange_both_ways(a, b, pos_ab)
        assert await scope_state(a, parent) == await scope_state(b, parent)
        assert (await scope_state(a, parent))["children"] == [child]


async def test_odd_operation_fields_from_python_are_refused_naming_the_field(
    stack: Stack,
) -> None:
    # `dead` kills actions in a merge (dead wins): an operation names at most
    # the actions its skip leaves out. Indexes are bounded like the log's.
    async with open_peers(stack, "a", "b") as (a, b):
        doc = await created(a)
        await ready(a, await a.reactor.execute(doc, "main", [add("x")]))
        create, write = await page_of(a)
        (op,) = write.operations
        far = {"id": "p", "action_id": "p", "index": 2**31 - 1, "hash": "h"}
        cases: list[tuple[Any, str]] = [
            (
                write.model_copy(update={"operations": [op.model_copy(update={"dead": ["x"]})]}),
                "dead",
            ),
            (
                {
                    **write.model_dump(),
                    "after": far,
                    "operations": [{**op.model_dump(), "index": 2**31}],
                },
                "index",
            ),
            (
                write.model_copy(
                    update={"operations": [op.model_copy(update={"skip": 0, "dead": ["a\x00"]})]}
                ),
                "dead",
            ),
        ]
        before = await row_counts(b.database_url)
        for bad, field in cases:
            with pytest.raises(ValidationError) as err:
                await b.reactor.load_batch([create, bad], origin=a.reactor_id)
            assert err.value.field == f"loads[1].operations[0].{field}", err.value
        # Document-scope inputs are checked like a batch's, not left to the reducer.
        (made,) = create.operations
        odd = made.action.model_copy(update={"input": {**made.action.input, "colour": "red"}})
        with pytest.raises(ValidationError) as err:
            await b.reactor.load_batch(
                [
                    create.model_copy(
                        update={"operations": [made.model_copy(update={"action": odd})]}
                    )
                ],
                origin=a.reactor_id,
            )
        assert err.value.field == "loads[0].operations[0].action.input.colour", err.value
        assert await row_counts(b.database_url) == before


async def test_a_write_concurrent_with_a_prune_keeps_its_effect(stack: Stack) -> None:
    # b writes, then a prunes what both held: the write is alive on both
    # sides after the sync, so the state must show it (placed before the
    # prune's LOAD_STATE, the state the prune loads erases it).
    async with open_peers(stack, "a", "b") as (a, b):
        doc = await created(a)
        for item in ("w1", "w2"):
            await ready(a, await a.reactor.execute(doc, "main", [add(item)]))
        pos_ab, _ = await exchange(a, b, Position())
        await ready(b, await b.reactor.execute(doc, "main", [add("b")]))
        prune = {"type": "PRUNE", "input": {"start": 0, "end": 2}}
        await ready(a, await a.reactor.execute(doc, "main", [prune]))
        await exchange_both_ways(a, b, pos_ab)
        items = {p.name: (await scope_state(p, doc, "global"))["items"] for p in (a, b)}
        assert items["a"] == items["b"]
        assert [item["id"] for item in items["a"]] == ["w1", "w2", "b"]


def versioned_counter(builder: ReactorBuilder) -> ReactorBuilder:
    return builder.with_document_models([counter]).with_upgrade_manifests(
        [counter.upgrade_manifest]
    )


async def test_one_document_upgraded_on_both_sides_converges(stack: Stack) -> None:
    # Both reactors upgrade a version-1 document (to 3 and to 2): the merged
    # document scope holds both UPGRADE_DOCUMENT, its model scopes both
    # migrations; the lane must still load, with one version on both sides.
    async with open_peers(stack, "a", "b", configure=versioned_counter) as (a, b):
        # A document at version 1 can only come from elsewhere (a create
        # here starts at the latest version): load one.
        create = Action(
            type="CREATE_DOCUMENT",
            input={"document_type": counter.document_type, "model_version": 1},
            scope="document",
        )
        op = {
            "id": "c-0",
            "index": 0,
            "timestamp": create.timestamp,
            "hash": LaneReducer.initial(None, "document").apply(create),
            "action": create,
        }
        load = {"document_id": "c", "scope": "document", "operations": [op]}
        await ready(a, (await a.reactor.load_batch([load], origin="elsewhere")).jobs["load-0"])
        await ready(a, await a.reactor.execute("c", "main", [{"type": "ADD", "input": {"n": 1}}]))
        pos_ab, _ = await exchange(a, b, Position())
        for peer, version in ((a, 3), (b, 2)):
            upgrade = {"type": "UPGRADE_DOCUMENT", "input": {"to_version": version}}
            await ready(peer, await peer.reactor.execute("c", "main", [upgrade], scope="document"))
        await exchange_both_ways(a, b, pos_ab)
        doc_a, doc_b = await a.reactor.get("c"), await b.reactor.get("c")
        assert doc_a.header.model_version == doc_b.header.model_version
        assert doc_a.state == doc_b.state


async def test_a_name_set_and_undone_on_one_side_leaves_both_headers_equal(stack: Stack) -> None:
    # b names the document; a names it too, then undoes that (the header
    # keeps a name that was undone). The headers must still end equal.
    async with open_peers(stack, "a", "b") as (a, b):
        doc = await created(a)
        pos_ab, _ = await exchange(a, b, Position())
        name = {"type": "SET_NAME", "input": {"name": "from b"}}
        await ready(b, await b.reactor.execute(doc, "main", [name]))
        name = {"type": "SET_NAME", "input": {"name": "from a"}}
        await ready(a, await a.reactor.execute(doc, "main", [name]))
        await ready(a, await a.reactor.execute(doc, "main", [{"type": "UNDO"}]))
        await exchange_both_ways(a, b, pos_ab)
        assert (await header(a, doc))["name"] == (await header(b, doc))["name"]
