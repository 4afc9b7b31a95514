"""UNDO, REDO, PRUNE, LOAD_STATE and NOOP through the whole stack: jobs in
batch workflows, the write path (fast and locked), keyframes, replay,
verification and read models all honour skips (reactor/domain/history.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from reactor.api.module import ReactorModule
from reactor.api.reactor import Reactor
from reactor.application.read_models import OperationWithContext
from reactor.application.replay import rebuild_state
from reactor.domain.document import Operation
from reactor.domain.errors import ValidationError
from reactor.domain.history import state_at
from reactor.domain.jobs import JobInfo, JobStatus
from reactor.domain.model import DocumentModel
from reactor.models import todo_list
from tests.support.rows import row_counts

Factory = Callable[..., Awaitable[ReactorModule]]
TODO = DocumentModel.from_module(todo_list)
UNDO = {"type": "UNDO", "input": {}}
REDO = {"type": "REDO", "input": {}}


def add(item: str) -> dict[str, Any]:
    return {"type": "ADD_TODO_ITEM", "input": {"id": item, "text": f"item {item}"}}


async def create(reactor: Reactor, doc: str, *items: str) -> None:
    jobs: list[dict[str, Any]] = [
        {
            "key": "create",
            "document_id": doc,
            "scope": "document",
            "actions": [
                {"type": "CREATE_DOCUMENT", "input": {"document_type": TODO.document_type}}
            ],
        }
    ]
    if items:
        jobs.append(
            {
                "key": "items",
                "document_id": doc,
                "depends_on": ["create"],
                "actions": [add(i) for i in items],
            }
        )
    result = await reactor.execute_batch({"jobs": jobs})
    infos = await reactor.wait_for_batch(result.batch_id)
    assert all(i.status is JobStatus.READ_READY for i in infos), infos


async def run(
    reactor: Reactor, doc: str, *actions: dict[str, Any], scope: str = "global"
) -> JobInfo:
    job = await reactor.execute(doc, "main", list(actions), scope=scope)
    return await reactor.wait_for_job(job.id, timeout=60)


async def items(reactor: Reactor, doc: str) -> list[str]:
    document = await reactor.get(doc)
    return [i["id"] for i in document.state["global"]["items"]]


async def log(reactor: Reactor, doc: str, scope: str = "global") -> list[Operation]:
    page = await reactor.get_operations(doc, scope=scope, limit=1000)
    return list(page.results)


async def test_undo_and_redo_across_batches_and_keyframes(module_factory: Factory) -> None:
    module = await module_factory(lambda b: b.with_write_cache_config(50, 2, keyframe_interval=4))
    reactor = module.reactor
    await create(reactor, "u1", "a", "b", "c")
    undo = await run(reactor, "u1", UNDO)
    assert undo.status is JobStatus.READ_READY
    assert await items(reactor, "u1") == ["a", "b"]
    noop = (await log(reactor, "u1"))[-1]
    assert (noop.index, noop.skip, noop.action.type) == (3, 1, "NOOP")
    assert noop.action.input == {"undone": 2}
    assert undo.consistency_token is not None
    (coordinate,) = undo.consistency_token.coordinates
    assert (coordinate.scope, coordinate.operation_index) == ("global", noop.index)
    # Index 3 is a keyframe (interval 4): it holds the state after the UNDO.
    async with module.database.pool.acquire() as conn:
        frame = await conn.fetchrow(
            "SELECT hash, state FROM reactor_keyframes WHERE document_id = 'u1' "
            "AND scope = 'global' AND idx = 3"
        )
    assert frame is not None and frame["hash"] == noop.hash
    assert [i["id"] for i in frame["state"]["items"]] == ["a", "b"]
    # A second undo after the keyframe goes one further back, past it.
    await run(reactor, "u1", UNDO)
    assert await items(reactor, "u1") == ["a"]
    assert (await log(reactor, "u1"))[-1].skip == 3
    redo = await run(reactor, "u1", REDO, REDO)
    assert redo.status is JobStatus.READ_READY
    assert await items(reactor, "u1") == ["a", "b", "c"]
    await run(reactor, "u1", add("d"), UNDO, add("e"), add("f"))  # crosses index 7
    assert await items(reactor, "u1") == ["a", "b", "c", "e", "f"]
    nothing = await run(reactor, "u1", REDO)
    assert nothing.status is JobStatus.FAILED
    assert nothing.error is not None and nothing.error.type == "NothingToRedo"
    # A cold worker (no write cache) sees the same head, and replay agrees
    # with or without keyframes.
    other = await module_factory(lambda b: b.with_write_cache_config(50, 2, keyframe_interval=4))
    await run(other.reactor, "u1", UNDO)
    assert await items(reactor, "u1") == ["a", "b", "c", "e"]
    document = await reactor.get("u1")
    for use_keyframes in (True, False):
        _, digest, state = await rebuild_state(
            module.database, module.registry, "u1", "global", use_keyframes=use_keyframes
        )
        assert state == document.state["global"]
    for revision in range(1, len(await log(reactor, "u1")) + 1):
        with_frames = await rebuild_state(
            module.database, module.registry, "u1", "global", revision=revision
        )
        without = await rebuild_state(
            module.database, module.registry, "u1", "global", revision=revision, use_keyframes=False
        )
        assert with_frames == without
    assert (await reactor.verify("u1")).ok


async def test_local_scope_undo_redo_and_load_state(module_factory: Factory) -> None:
    module = await module_factory()
    reactor = module.reactor
    await create(reactor, "u2", "a")
    loaded = await run(reactor, "u2", {"type": "LOAD_STATE", "input": {"state": {}}}, scope="local")
    assert loaded.status is JobStatus.READ_READY
    await run(reactor, "u2", {"type": "NOOP", "input": {}}, scope="local")
    undone = await run(reactor, "u2", UNDO, scope="local")
    assert undone.status is JobStatus.READ_READY
    local = await log(reactor, "u2", scope="local")
    assert [(o.action.type, o.skip) for o in local] == [("LOAD_STATE", 0), ("NOOP", 0), ("NOOP", 2)]
    assert (await reactor.verify("u2")).ok


async def test_verify_replays_skips_and_finds_one_that_was_changed(module_factory: Factory) -> None:
    module = await module_factory()
    reactor = module.reactor
    await create(reactor, "u3", "a", "b")
    await run(reactor, "u3", UNDO, add("c"))
    assert (await reactor.verify("u3")).ok
    tamper = (
        "UPDATE reactor_operations SET skip = $1 WHERE document_id = 'u3' "
        "AND scope = 'global' AND idx = 2"
    )
    async with module.database.pool.acquire() as conn:
        await conn.execute(tamper, 0)
        try:
            result = await reactor.verify("u3")
        finally:
            await conn.execute(tamper, 1)
    assert not result.ok and result.difference is not None
    assert (result.difference.kind, result.difference.index) == ("operation", 2)
    assert (await reactor.verify("u3")).ok


class ReplayingReadModel:
    """Rebuilds each todo list's state from the operations it is given, with
    the history rules, so its answer depends on every skip reaching it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.logs: dict[str, list[Operation]] = {}

    async def index_operations(self, operations: list[OperationWithContext]) -> None:
        for item in operations:
            op = item.operation
            if op.scope == "global" and item.context.document_type == TODO.document_type:
                self.logs.setdefault(op.document_id, []).append(op)

    def items(self, doc: str) -> list[str]:
        ops = self.logs[doc]
        state = state_at(TODO, "global", ops, len(ops)).state()
        return [i["id"] for i in state["items"]]


async def test_prune_then_reads_verify_and_a_read_model_rebuilt_from_zero(
    module_factory: Factory,
) -> None:
    live = ReplayingReadModel("replaying-live")
    module = await module_factory(
        lambda b: b.with_read_model(live).with_write_cache_config(50, 2, keyframe_interval=3)
    )
    reactor = module.reactor
    await create(reactor, "p1", "a", "b", "c", "d", "e")
    await run(reactor, "p1", UNDO)
    pruned = await run(reactor, "p1", {"type": "PRUNE", "input": {"start": 1, "end": 6}})
    assert pruned.status is JobStatus.READ_READY
    load = (await log(reactor, "p1"))[-1]
    assert (load.index, load.skip, load.action.type) == (6, 5, "LOAD_STATE")
    assert [i["id"] for i in load.action.input["state"]["items"]] == ["a", "b", "c", "d"]
    await run(reactor, "p1", add("f"))
    assert await items(reactor, "p1") == ["a", "b", "c", "d", "f"]
    async with module.database.pool.acquire() as conn:
        kept = await conn.fetchval(
            "SELECT count(*) FROM reactor_operations WHERE document_id = 'p1' AND scope = 'global'"
        )
    assert kept == 8  # the pruned rows stay
    assert (await reactor.verify("p1")).ok
    assert live.items("p1") == ["a", "b", "c", "d", "f"]
    rebuilt = ReplayingReadModel("replaying-rebuilt")
    fresh = await module_factory(lambda b: b.with_read_model(rebuilt))
    await run(fresh.reactor, "p1", {"type": "NOOP", "input": {}})
    assert rebuilt.items("p1") == live.items("p1") == await items(reactor, "p1")
    assert [o.skip for o in rebuilt.logs["p1"]] == [0, 0, 0, 0, 0, 1, 5, 0, 0]


BAD: list[tuple[list[dict[str, Any]], str, str]] = [
    ([REDO], "global", "NothingToRedo"),
    ([UNDO], "local", "NothingToUndo"),
    ([add("x"), REDO], "global", "NothingToRedo"),
    ([{"type": "PRUNE", "input": {"start": 1, "end": 1}}], "global", "InvalidPruneRange"),
    ([{"type": "PRUNE", "input": {"start": 2, "end": 1}}], "global", "InvalidPruneRange"),
    ([{"type": "PRUNE", "input": {"start": 0, "end": 9}}], "global", "InvalidPruneRange"),
]


@pytest.mark.parametrize(("actions", "scope", "error"), BAD)
async def test_bad_history_actions_fail_by_name_and_write_nothing(
    module_factory: Factory,
    database_url: str,
    actions: list[dict[str, Any]],
    scope: str,
    error: str,
) -> None:
    module = await module_factory()
    reactor = module.reactor
    doc = f"bad-{error}-{len(actions)}-{actions[-1]['input'].get('start', 0)}-{actions[-1]['input'].get('end', 0)}"
    await create(reactor, doc, "a", "b")
    before = await row_counts(database_url)
    info = await run(reactor, doc, *actions, scope=scope)
    assert info.status is JobStatus.FAILED
    assert info.error is not None and info.error.type == error
    if error == "InvalidPruneRange":
        start, end = actions[0]["input"]["start"], actions[0]["input"]["end"]
        assert f"start={start} end={end}" in info.error.message
    after = await row_counts(database_url)
    changed = {t for t in after if after[t] != before.get(t)}
    assert "reactor_operations" not in changed
    assert "reactor_document_states" not in changed
    assert "reactor_keyframes" not in changed
    assert await items(reactor, doc) == ["a", "b"]


async def test_load_state_failing_the_schema_is_refused_before_anything_is_written(
    module_factory: Factory, database_url: str
) -> None:
    module = await module_factory()
    reactor = module.reactor
    await create(reactor, "ls1", "a")
    before = await row_counts(database_url)
    bad = {"type": "LOAD_STATE", "input": {"state": {"items": "not a list"}}}
    with pytest.raises(ValidationError) as caught:
        await reactor.execute("ls1", "main", [bad])
    assert caught.value.field == "actions[0].input.state.items"
    assert await row_counts(database_url) == before
