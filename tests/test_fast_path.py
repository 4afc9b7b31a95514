"""The one-round-trip write path (reactor/application/apply.py): a job that
starts from the write cache, and every way that cache can be wrong. Two
JobAppliers on one database stand for two worker processes."""

from __future__ import annotations

import asyncio
from typing import Any

from reactor.application.apply import JobApplier
from reactor.application.replay import rebuild_state
from reactor.domain.batch import PlannedJob
from reactor.domain.jobs import JobOutcome
from reactor.runtime.worker import registry_of
from reactor.storage.database import Database
from tests.support.direct import plan_job

TODO = "powerhouse/todo-list"
DRIVE = "powerhouse/document-drive"


async def plan(
    db: Database, document_id: str, actions: list[dict[str, Any]], scope: str = "global"
) -> tuple[str, PlannedJob]:
    return await plan_job(db, document_id, actions, scope, prefix="fast")


async def run(
    applier: JobApplier,
    db: Database,
    doc: str,
    actions: list[dict[str, Any]],
    scope: str = "global",
) -> JobOutcome:
    batch_id, job = await plan(db, doc, actions, scope)
    return await applier.apply(batch_id, job)


def add(*ids: str) -> list[dict[str, Any]]:
    return [{"type": "ADD_TODO_ITEM", "input": {"id": i, "text": f"item {i}"}} for i in ids]


async def create(applier: JobApplier, db: Database, doc: str, doc_type: str = TODO) -> None:
    outcome = await run(
        applier,
        db,
        doc,
        [{"type": "CREATE_DOCUMENT", "input": {"document_type": doc_type}}],
        scope="document",
    )
    assert outcome.ok, outcome.error


async def log_of(db: Database, doc: str, scope: str = "global") -> list[tuple[int, str]]:
    async with db.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT idx, action->'input'->>'id' AS item FROM reactor_operations "
            "WHERE document_id = $1 AND scope = $2 ORDER BY idx",
            doc,
            scope,
        )
    return [(r["idx"], r["item"]) for r in rows]


async def assert_consistent(db: Database, doc: str) -> dict[str, Any]:
    """Indices contiguous, every stored hash equal to a replay's, and the
    document view equal to the replayed head."""
    log = await log_of(db, doc)
    assert [i for i, _ in log] == list(range(len(log)))
    revision, digest, state = await rebuild_state(
        db, registry_of(), doc, "global", use_keyframes=False
    )
    async with db.pool.acquire() as conn:
        view = await conn.fetchrow(
            "SELECT revision, hash, state FROM reactor_document_states "
            "WHERE document_id = $1 AND scope = 'global'",
            doc,
        )
    assert (view["revision"], view["hash"], view["state"]) == (revision, digest, state)
    return state


async def test_warm_lane_takes_one_round_trip_and_stays_replayable(db: Database) -> None:
    applier = JobApplier(db, registry_of(), keyframe_interval=4)
    await create(applier, db, "fp-1")
    # The create (locked: document scope) cached the new global head.
    first = await run(applier, db, "fp-1", add("a"))
    assert applier.stats == {"fast": 1, "locked": 1, "fallbacks": 0}
    for n in range(5):
        outcome = await run(applier, db, "fp-1", add(f"b{n}", f"c{n}"))
        assert outcome.ok
    assert applier.stats["fast"] == 6 and applier.stats["fallbacks"] == 0
    assert first.coordinates[0].operation_index == 0
    state = await assert_consistent(db, "fp-1")
    assert state["stats"]["total"] == 11
    async with db.pool.acquire() as conn:
        keyframes = await conn.fetch(
            "SELECT idx FROM reactor_keyframes WHERE document_id = 'fp-1' AND scope = 'global' "
            "ORDER BY idx"
        )
    assert [k["idx"] for k in keyframes] == [3, 7]  # written by fast-path jobs
    rebuilt = await rebuild_state(db, registry_of(), "fp-1", "global", revision=9)
    assert rebuilt[0] == 9 and len(rebuilt[2]["items"]) == 9


async def test_stale_cache_falls_back_and_never_duplicates(db: Database) -> None:
    one, two = JobApplier(db, registry_of()), JobApplier(db, registry_of())
    await create(one, db, "fp-2")
    await run(one, db, "fp-2", add("x0"))
    await run(two, db, "fp-2", add("y0"))  # two: cold, locked; one's cache is now stale
    for n in range(1, 6):
        assert (await run(one, db, "fp-2", add(f"x{n}"))).ok
        assert (await run(two, db, "fp-2", add(f"y{n}"))).ok
    assert one.stats["fallbacks"] >= 1 and two.stats["fallbacks"] >= 1
    log = await log_of(db, "fp-2")
    assert sorted(item for _, item in log) == sorted(
        [f"x{n}" for n in range(6)] + [f"y{n}" for n in range(6)]
    )
    await assert_consistent(db, "fp-2")


async def test_two_appliers_racing_on_one_document(db: Database) -> None:
    one, two = JobApplier(db, registry_of()), JobApplier(db, registry_of())
    await create(one, db, "fp-3")
    await run(one, db, "fp-3", add("warm-1"))
    await run(two, db, "fp-3", add("warm-2"))
    jobs = [(one if n % 2 else two, f"r{n}") for n in range(40)]
    outcomes = await asyncio.gather(*(run(a, db, "fp-3", add(item)) for a, item in jobs))
    assert all(o.ok for o in outcomes)
    log = await log_of(db, "fp-3")
    assert len(log) == 42 and len({item for _, item in log}) == 42
    await assert_consistent(db, "fp-3")


async def test_retried_job_on_a_warm_lane_returns_the_recorded_outcome(db: Database) -> None:
    applier = JobApplier(db, registry_of())
    await create(applier, db, "fp-4")
    await run(applier, db, "fp-4", add("a"))
    batch_id, job = await plan(db, "fp-4", add("b"))
    first = await applier.apply(batch_id, job)
    again = await applier.apply(batch_id, job)  # a retried activity, cache warm
    assert again.ok and again.coordinates == first.coordinates
    assert again.last_position == first.last_position
    assert applier.stats["fallbacks"] == 1
    assert [item for _, item in await log_of(db, "fp-4")] == ["a", "b"]


async def test_document_deleted_elsewhere_fails_the_job_and_writes_nothing(db: Database) -> None:
    one, two = JobApplier(db, registry_of()), JobApplier(db, registry_of())
    await create(one, db, "fp-5")
    await run(one, db, "fp-5", add("a"))
    batch_id, job = await plan(db, "fp-5", add("b"))  # planned while it existed
    deleted = await run(
        two, db, "fp-5", [{"type": "DELETE_DOCUMENT", "input": {}}], scope="document"
    )
    assert deleted.ok
    outcome = await one.apply(batch_id, job)  # one's cache says revision 1, alive
    assert not outcome.ok and outcome.error is not None
    assert outcome.error.type == "DocumentDeleted"
    assert one.stats["fallbacks"] == 1  # the statement's own guard turned it back
    assert [item for _, item in await log_of(db, "fp-5")] == ["a"]
    async with db.pool.acquire() as conn:
        revision = await conn.fetchval(
            "SELECT revision FROM reactor_document_states "
            "WHERE document_id = 'fp-5' AND scope = 'global'"
        )
    assert revision == 1


async def test_rejection_against_a_stale_head_is_retried_under_the_lock(db: Database) -> None:
    one, two = JobApplier(db, registry_of()), JobApplier(db, registry_of())
    await create(one, db, "fp-6")
    await run(one, db, "fp-6", add("a"))
    await run(two, db, "fp-6", add("late"))  # one's cached head has no "late"
    update = [{"type": "UPDATE_TODO_ITEM", "input": {"id": "late", "checked": True}}]
    outcome = await run(one, db, "fp-6", update)
    assert outcome.ok, outcome.error  # the stale head would have rejected it
    state = await assert_consistent(db, "fp-6")
    assert [i["checked"] for i in state["items"] if i["id"] == "late"] == [True]


async def test_stale_head_that_would_accept_is_rejected_on_the_real_head(db: Database) -> None:
    one, two = JobApplier(db, registry_of()), JobApplier(db, registry_of())
    await create(one, db, "fp-7")
    await run(one, db, "fp-7", add("a"))
    await run(two, db, "fp-7", [{"type": "DELETE_TODO_ITEM", "input": {"id": "a"}}])
    update = [{"type": "UPDATE_TODO_ITEM", "input": {"id": "a", "checked": True}}]
    outcome = await run(one, db, "fp-7", update)  # fine on one's stale head, not on the real one
    assert not outcome.ok and outcome.error is not None
    assert outcome.error.type == "ReducerError"
    assert len(await log_of(db, "fp-7")) == 2
    await assert_consistent(db, "fp-7")


async def test_concurrent_jobs_in_one_process_queue_per_lane(db: Database) -> None:
    applier = JobApplier(db, registry_of())
    await create(applier, db, "fp-8")
    await run(applier, db, "fp-8", add("first"))
    outcomes = await asyncio.gather(*(run(applier, db, "fp-8", add(f"q{n}")) for n in range(30)))
    assert all(o.ok for o in outcomes)
    assert applier.stats["fallbacks"] == 0  # queued in process: every job saw the last head
    assert applier.stats["fast"] == 31  # "first" too: the create cached the initial head
    assert len(applier.lanes) == 0
    await assert_consistent(db, "fp-8")


async def test_model_child_edges_follow_the_state_on_the_fast_path(db: Database) -> None:
    applier = JobApplier(db, registry_of())
    await create(applier, db, "fp-drive", DRIVE)

    def file(node_id: str) -> dict[str, Any]:
        return {
            "type": "ADD_FILE",
            "input": {"id": node_id, "name": node_id, "document_type": TODO},
        }

    await run(applier, db, "fp-drive", [file("f1")])
    await run(applier, db, "fp-drive", [file("f2"), file("f3")])
    await run(applier, db, "fp-drive", [{"type": "DELETE_NODE", "input": {"id": "f2"}}])
    assert applier.stats["fast"] >= 2
    async with db.pool.acquire() as conn:
        children = await conn.fetch(
            "SELECT child_id FROM reactor_relationships WHERE parent_id = 'fp-drive' "
            "AND source = 'model' ORDER BY child_id"
        )
    assert [c["child_id"] for c in children] == ["f1", "f3"]


async def test_a_document_created_elsewhere_starts_on_the_locked_path(db: Database) -> None:
    """Only the applier that created a document knows its initial heads; a
    second one (another process) reads the head under the lock first."""
    creator, other = JobApplier(db, registry_of()), JobApplier(db, registry_of())
    await create(creator, db, "fp-elsewhere")
    assert (await run(other, db, "fp-elsewhere", add("a"))).ok
    assert other.stats == {"fast": 0, "locked": 1, "fallbacks": 0}
    assert (await run(other, db, "fp-elsewhere", add("b"))).ok
    assert other.stats["fast"] == 1
    # The creator's cached initial head is stale now: its write is turned back.
    assert (await run(creator, db, "fp-elsewhere", add("c"))).ok
    assert creator.stats == {"fast": 0, "locked": 2, "fallbacks": 1}
    state = await assert_consistent(db, "fp-elsewhere")
    assert [i["id"] for i in state["items"]] == ["a", "b", "c"]


async def test_a_failed_create_caches_nothing(db: Database) -> None:
    applier = JobApplier(db, registry_of())
    batch_id, job = await plan(
        db,
        "fp-failed",
        [
            {"type": "CREATE_DOCUMENT", "input": {"document_type": TODO, "slug": "taken"}},
        ],
        scope="document",
    )
    await create(applier, db, "fp-holder")
    async with db.pool.acquire() as conn:  # the slug is taken by the time the job runs
        await conn.execute("UPDATE reactor_documents SET slug = 'taken' WHERE id = 'fp-holder'")
    outcome = await applier.apply(batch_id, job)
    assert not outcome.ok and outcome.error is not None and outcome.error.type == "SlugTaken"
    assert applier.cache.latest(("fp-failed", "global", "main")) is None
