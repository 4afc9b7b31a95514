"""A job whose data cannot be applied or stored ends FAILED, recorded once,
with nothing of it written; the rest of its batch goes on and the worker
keeps working. (Infrastructure errors retry instead: tests/unit/
test_storage_errors.py says which are which.)"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import activities.batch as batch_activities
from activities.batch import UNKNOWN_ERROR_ATTEMPTS, ApplyJobsInput, BatchActivities
from reactor.api.module import ReactorModule
from reactor.application.apply import Committed, JobApplier
from reactor.application.read_models import BlockedReadModel, ReadModelCoordinator
from reactor.domain.actions import Action
from reactor.domain.batch import PlannedJob
from reactor.domain.jobs import JobOutcome, JobStatus
from reactor.domain.workflow_io import BatchConfig
from reactor.runtime.worker import registry_of
from reactor.storage.database import Database
from reactor.storage.job_ledger import JobLedger
from reactor.storage.operation_store import Position
from tests.support import counter_model
from tests.support.batches import create_list
from tests.support.direct import DirectWriter

TODO = "powerhouse/todo-list"


async def rows_of(db: Database) -> dict[str, int]:
    """The row count of every reactor_* table (the database is this test's own)."""
    async with db.pool.acquire() as conn:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE 'reactor%' ORDER BY 1"
        )
        return {
            t["tablename"]: await conn.fetchval(f'SELECT count(*) FROM "{t["tablename"]}"')
            for t in tables
        }


async def ledger_status(db: Database, job_id: str) -> str | None:
    async with db.pool.acquire() as conn:
        return await conn.fetchval(
            "SELECT status FROM reactor_applied_jobs WHERE job_id = $1", job_id
        )


def hand_planned(document_id: str, actions: list[dict[str, Any]], index: int = 0) -> PlannedJob:
    """A job as the planner would hand it over, built without the planner:
    validation at the edge would refuse these inputs before the apply path
    saw them, and this is a test of the apply path."""
    return PlannedJob(
        index=index,
        key=f"k{index}",
        document_id=document_id,
        document_type=TODO,
        scope="global",
        branch="main",
        deps=[],
        after=None,
        actions=[Action(type=a["type"], input=a["input"]) for a in actions],
    )


async def assert_failed_and_nothing_written(
    db: Database,
    applier: JobApplier,
    batch_id: str,
    job: PlannedJob,
    error_type: str,
) -> JobOutcome:
    before = await rows_of(db)
    outcome = await asyncio.wait_for(applier.apply(batch_id, job), 30)
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error.type == error_type, outcome.error
    assert outcome.error.message
    assert await ledger_status(db, f"{batch_id}:{job.index}") == "failed"
    # Only the ledger's row for the failed job was written.
    assert await rows_of(db) == {
        **before,
        "reactor_applied_jobs": before["reactor_applied_jobs"] + 1,
    }
    # A retried attempt gets the recorded answer, not a second try.
    again = await asyncio.wait_for(applier.apply(batch_id, job), 30)
    assert again == outcome
    return outcome


@pytest.fixture
async def writer(db: Database) -> DirectWriter:
    w = DirectWriter(db)
    await w.create_list("list")
    return w


async def test_a_nul_in_an_action_input_fails_the_job_and_the_applier_goes_on(
    db: Database, writer: DirectWriter
) -> None:
    applier = writer.applier
    bad = hand_planned("list", [{"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "a\0b"}}])
    outcome = await assert_failed_and_nothing_written(
        db, applier, "nul", bad, "UntranslatableCharacterError"
    )
    assert outcome.error is not None and "\0" not in outcome.error.message
    # The next job on the same document and applier is applied.
    await writer.add_items("list", ["2"])
    assert (await rows_of(db))["reactor_operations"] == 2  # CREATE, then item 2


async def test_a_nul_in_a_document_id_fails_the_job(db: Database, writer: DirectWriter) -> None:
    bad = hand_planned("li\0st", [{"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "x"}}])
    await assert_failed_and_nothing_written(
        db, writer.applier, "nulid", bad, "CharacterNotInRepertoireError"
    )
    await writer.add_items("list", ["2"])


async def test_a_lone_surrogate_in_an_input_fails_the_job(
    db: Database, writer: DirectWriter
) -> None:
    bad = hand_planned(
        "list", [{"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "a\ud800b"}}]
    )
    await assert_failed_and_nothing_written(
        db, writer.applier, "surrogate", bad, "UnserializableState"
    )
    await writer.add_items("list", ["2"])


async def test_the_locked_path_fails_a_nul_input_the_same_way(db: Database) -> None:
    writer = DirectWriter(db)
    writer.applier.fast_path = False
    await writer.create_list("list")
    bad = hand_planned("list", [{"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "a\0"}}])
    await assert_failed_and_nothing_written(
        db, writer.applier, "locked", bad, "UntranslatableCharacterError"
    )
    await writer.add_items("list", ["2"])


async def test_a_chunk_whose_jobs_are_not_stored_fails_without_retrying(db: Database) -> None:
    applier = JobApplier(db, registry_of())
    acts = BatchActivities(applier, JobLedger(db))
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(
            acts.apply_jobs, ApplyJobsInput(batch_id="never-stored", indices=[0, 1])
        )
    assert raised.value.non_retryable
    assert raised.value.type == "JobsNotStored"


async def test_a_chunk_whose_stored_jobs_do_not_parse_fails_without_retrying(
    db: Database,
) -> None:
    async with db.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO reactor_batches (batch_id, request_hash, job_count) VALUES ('b', 'h', 1)"
        )
        await conn.execute(
            "INSERT INTO reactor_batch_jobs (batch_id, idx, key, document_id, document_type,"
            " scope, branch, deps, after_idx, actions)"
            " VALUES ('b', 0, 'k', 'd', $1, 'global', 'main', '{}', NULL, $2)",
            TODO,
            [{"type": 5}],
        )
    acts = BatchActivities(JobApplier(db, registry_of()), JobLedger(db))
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(acts.apply_jobs, ApplyJobsInput(batch_id="b", indices=[0]))
    assert raised.value.non_retryable
    assert raised.value.type == "StoredJobsUnreadable"


class DroppedOnce(JobApplier):
    """The database connection drops under the first attempt at job 0."""

    dropped = False

    async def commit(self, batch_id: str, job: PlannedJob) -> Committed:
        if job.index == 0 and not self.dropped:
            self.dropped = True
            await asyncio.sleep(0.05)  # the chunk's other lanes are under way
            raise ConnectionResetError(104, "Connection reset by peer")
        return await super().commit(batch_id, job)


async def test_a_job_after_one_that_raised_waits_for_the_retry(
    db: Database, writer: DirectWriter
) -> None:
    await writer.create_list("other")

    def add(index: int, doc: str, item: str, after: int | None) -> PlannedJob:
        job = hand_planned(doc, [{"type": "ADD_TODO_ITEM", "input": {"id": item, "text": item}}])
        return job.model_copy(update={"index": index, "key": f"k{index}", "after": after})

    # 0 then 1 on one lane; 2 on another lane.
    jobs = [add(0, "list", "a", None), add(1, "list", "b", 0), add(2, "other", "c", None)]
    acts = BatchActivities(DroppedOnce(db, registry_of()), JobLedger(db))
    inp = ApplyJobsInput(batch_id="retry", indices=[0, 1, 2], jobs=jobs)
    with pytest.raises(ConnectionResetError):
        await ActivityEnvironment().run(acts.apply_jobs, inp)
    assert await ledger_status(db, "retry:1") is None  # not applied ahead of job 0
    assert await ledger_status(db, "retry:2") == "applied"  # the other lane went on

    outcomes = await ActivityEnvironment().run(acts.apply_jobs, inp)  # the retry
    assert [o.ok for o in outcomes] == [True, True, True]
    assert [o.coordinates[0].operation_index for o in outcomes] == [0, 1, 0]


class Raising(JobApplier):
    def __init__(self, db: Database, exc: Exception):
        super().__init__(db, registry_of())
        self.exc = exc

    async def commit(self, batch_id: str, job: PlannedJob) -> Committed:
        raise self.exc


def on_attempt(attempt: int) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt)
    return env


async def test_a_job_that_keeps_raising_fails_after_bounded_attempts(
    db: Database, writer: DirectWriter
) -> None:
    job = hand_planned("list", [{"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "x"}}])
    inp = ApplyJobsInput(batch_id="bug", indices=[0], jobs=[job])
    bug = BatchActivities(Raising(db, RuntimeError("a bug")), JobLedger(db))
    with pytest.raises(RuntimeError):
        await on_attempt(1).run(bug.apply_jobs, inp)
    [outcome] = await on_attempt(UNKNOWN_ERROR_ATTEMPTS).run(bug.apply_jobs, inp)
    assert not outcome.ok
    assert outcome.error is not None and outcome.error.type == "RuntimeError"
    assert await ledger_status(db, "bug:0") == "failed"
    # A later attempt, whatever it does, gets the same answer.
    [again] = await on_attempt(1).run(
        BatchActivities(writer.applier, JobLedger(db)).apply_jobs, inp
    )
    assert again == outcome
    # An outage is retried however long it lasts.
    outage = BatchActivities(Raising(db, ConnectionRefusedError(111, "refused")), JobLedger(db))
    with pytest.raises(ConnectionRefusedError):
        await on_attempt(UNKNOWN_ERROR_ATTEMPTS * 10).run(outage.apply_jobs, inp)


class BrokenLedger(JobLedger):
    async def load_jobs(self, batch_id: str, indices: list[int]) -> list[PlannedJob]:
        raise RuntimeError("a bug in loading")


async def test_a_chunk_that_keeps_raising_fails_without_retrying_after_bounded_attempts(
    db: Database,
) -> None:
    acts = BatchActivities(JobApplier(db, registry_of()), BrokenLedger(db))
    inp = ApplyJobsInput(batch_id="b", indices=[0])
    with pytest.raises(RuntimeError):
        await on_attempt(UNKNOWN_ERROR_ATTEMPTS - 1).run(acts.apply_jobs, inp)
    with pytest.raises(ApplicationError) as raised:
        await on_attempt(UNKNOWN_ERROR_ATTEMPTS).run(acts.apply_jobs, inp)
    assert raised.value.non_retryable
    assert raised.value.type == "RuntimeError"


def counter_jobs(doublings: int) -> list[dict[str, Any]]:
    return [
        {
            "key": "create",
            "document_id": "c1",
            "scope": "document",
            "actions": [{"type": "CREATE_DOCUMENT", "input": {"document_type": "test/counter"}}],
        },
        {
            "key": "grow",
            "document_id": "c1",
            "actions": [{"type": "DOUBLE", "input": {}}] * doublings,
            "depends_on": ["create"],
        },
        {
            "key": "after",
            "document_id": "c1",
            "actions": [{"type": "DOUBLE", "input": {}}],
            "depends_on": ["grow"],
        },
        {
            "key": "crash",
            "document_id": "c2",
            "scope": "document",
            "actions": [{"type": "CREATE_DOCUMENT", "input": {"document_type": "test/counter"}}],
        },
        {
            "key": "crashing",
            "document_id": "c2",
            "actions": [{"type": "CRASH", "input": {}}],
            "depends_on": ["crash"],
        },
        {
            "key": "other",
            "document_id": "l1",
            "scope": "document",
            "actions": [{"type": "CREATE_DOCUMENT", "input": {"document_type": TODO}}],
        },
        {
            "key": "other-item",
            "document_id": "l1",
            "actions": [{"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "x"}}],
            "depends_on": ["other"],
        },
    ]


async def test_a_state_grown_past_the_hash_range_fails_its_job_and_the_batch_goes_on(
    module_factory: Callable[..., Awaitable[ReactorModule]],
) -> None:
    module = await module_factory(lambda b: b.with_document_models([counter_model]))
    reactor = module.reactor
    # 1 doubled 64 times is 2**64: one more than the hash's JSON can hold.
    result = await reactor.execute_batch({"jobs": counter_jobs(70)})
    infos = {i.key: i for i in await asyncio.wait_for(reactor.wait_for_batch(result.batch_id), 60)}
    grow = infos["grow"]
    assert grow.status is JobStatus.FAILED
    assert grow.error is not None and grow.error.type == "UnserializableState"
    assert "actions[63] DOUBLE" in grow.error.message
    after = infos["after"]
    assert after.status is JobStatus.FAILED
    assert after.error is not None and after.error.dependency == "grow"
    crashing = infos["crashing"]
    assert crashing.status is JobStatus.FAILED
    assert crashing.error is not None and crashing.error.type == "KeyError"
    for ok in ("create", "crash", "other", "other-item"):
        assert infos[ok].status is JobStatus.READ_READY, infos[ok]
    db = module.database
    assert await ledger_status(db, grow.id) == "failed"
    async with db.pool.acquire() as conn:
        written = await conn.fetchval(
            "SELECT count(*) FROM reactor_operations WHERE job_id = ANY($1::text[])",
            [grow.id, after.id, crashing.id],
        )
        revision = await conn.fetchval(
            "SELECT revision FROM reactor_document_states"
            " WHERE document_id = 'c1' AND scope = 'global'"
        )
    assert written == 0
    assert revision == 0


async def test_a_job_that_keeps_raising_fails_alone_and_its_written_neighbour_stands(
    module_factory: Callable[..., Awaitable[ReactorModule]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Python error class (TypeError here) is no reason for Temporal to
    stop retrying a chunk: the activity bounds it job by job, so the job on
    the other lane, committed on the first attempt, is never FAILED."""
    monkeypatch.setattr(batch_activities, "UNKNOWN_ERROR_ATTEMPTS", 3)
    real = JobApplier.commit
    attempts: list[int] = []

    async def commit(self: JobApplier, batch_id: str, job: PlannedJob) -> Committed:
        if job.key == "bad":
            attempts.append(job.index)
            await asyncio.sleep(0.05)  # the other lane commits first
            raise TypeError("a bug in the apply path")
        return await real(self, batch_id, job)

    monkeypatch.setattr(JobApplier, "commit", commit)
    module = await module_factory()
    reactor = module.reactor
    result = await reactor.execute_batch(
        {"jobs": [create_list("good", "lane-a"), create_list("bad", "lane-b")]}
    )
    infos = {i.key: i for i in await asyncio.wait_for(reactor.wait_for_batch(result.batch_id), 60)}
    assert infos["good"].status is JobStatus.READ_READY, infos["good"]
    bad = infos["bad"]
    assert bad.status is JobStatus.FAILED
    assert bad.error is not None and bad.error.type == "TypeError"
    assert "a bug in the apply path (raised on 3 attempts)" in bad.error.message
    assert len(attempts) == 3
    assert await ledger_status(module.database, infos["good"].id) == "applied"
    assert await ledger_status(module.database, bad.id) == "failed"


class BrokenCatchUp(ReadModelCoordinator):
    """Raises after the chunk's jobs are committed."""

    async def catch_up(self, target: Position, *, timeout: float = 60.0) -> list[BlockedReadModel]:
        raise TypeError("a bug after the commit")


async def test_an_error_after_the_commit_leaves_written_jobs_write_ready(
    db: Database, writer: DirectWriter
) -> None:
    await writer.create_list("other")
    jobs = [
        hand_planned("list", [{"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "x"}}], 0),
        hand_planned("other", [{"type": "ADD_TODO_ITEM", "input": {"id": "2", "text": "y"}}], 1),
    ]
    inp = ApplyJobsInput(batch_id="late", indices=[0, 1], jobs=jobs)
    acts = BatchActivities(writer.applier, JobLedger(db), read_models=BrokenCatchUp(db, []))
    with pytest.raises(TypeError):  # retried: Temporal is given no error type to stop on
        await on_attempt(1).run(acts.apply_jobs, inp)
    assert [await ledger_status(db, f"late:{i}") for i in (0, 1)] == ["applied", "applied"]
    outcomes = await on_attempt(UNKNOWN_ERROR_ATTEMPTS).run(acts.apply_jobs, inp)
    for outcome in outcomes:
        assert outcome.ok and outcome.coordinates
        assert outcome.held is not None and outcome.held.type == "TypeError"
        assert "a bug after the commit" in outcome.held.message
        assert f"raised on {UNKNOWN_ERROR_ATTEMPTS} attempts" in outcome.held.message


def with_heartbeat(attempt: int, details: dict[str, Any] | None) -> ActivityEnvironment:
    env = on_attempt(attempt)
    env.info = dataclasses.replace(env.info, heartbeat_details=[details] if details else [])
    return env


class Watched(JobApplier):
    """Records the heartbeats sent before each job's commit."""

    def __init__(self, db: Database, beats: list[Any]):
        super().__init__(db, registry_of())
        self.beats = beats
        self.seen: dict[int, list[Any]] = {}

    async def commit(self, batch_id: str, job: PlannedJob) -> Committed:
        self.seen[job.index] = list(self.beats)
        return await super().commit(batch_id, job)


async def test_the_job_in_progress_is_named_in_a_heartbeat_before_it_runs(
    db: Database, writer: DirectWriter
) -> None:
    beats: list[Any] = []
    applier = Watched(db, beats)
    job = hand_planned("list", [{"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "x"}}])
    env = with_heartbeat(1, None)
    env.on_heartbeat = lambda *details: beats.append(details[0])
    acts = BatchActivities(applier, JobLedger(db))
    await env.run(acts.apply_jobs, ApplyJobsInput(batch_id="hb", indices=[0], jobs=[job]))
    assert applier.seen[0][-1] == {"attempt": 1, "running": [0], "stuck": {}}


async def test_a_job_in_progress_whenever_its_attempts_died_is_given_up(
    db: Database, writer: DirectWriter
) -> None:
    await writer.create_list("other")
    jobs = [
        hand_planned("list", [{"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "x"}}], 0),
        hand_planned("list", [{"type": "ADD_TODO_ITEM", "input": {"id": "2", "text": "y"}}], 1),
        hand_planned("other", [{"type": "ADD_TODO_ITEM", "input": {"id": "3", "text": "z"}}], 2),
    ]
    jobs[1] = jobs[1].model_copy(update={"deps": [0], "after": 0})
    inp = ApplyJobsInput(batch_id="stuck", indices=[0, 1, 2], jobs=jobs)
    acts = BatchActivities(writer.applier, JobLedger(db))
    last = UNKNOWN_ERROR_ATTEMPTS - 1
    died_in_0 = {"attempt": last, "running": [0], "stuck": {"0": last - 1}}
    outcomes = await with_heartbeat(UNKNOWN_ERROR_ATTEMPTS, died_in_0).run(acts.apply_jobs, inp)
    never, dependent, other = outcomes
    assert not never.ok and never.error is not None
    assert never.error.type == "JobNeverFinished"
    assert f"in progress on {last} attempts in a row that timed out or lost their worker" in (
        never.error.message
    )
    assert await ledger_status(db, "stuck:0") == "failed"
    assert dependent.error is not None and dependent.error.dependency == "k0"
    assert other.ok


async def test_a_job_in_progress_when_an_early_attempt_died_is_run_again(
    db: Database, writer: DirectWriter
) -> None:
    job = hand_planned("list", [{"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "x"}}])
    inp = ApplyJobsInput(batch_id="early", indices=[0], jobs=[job])
    acts = BatchActivities(writer.applier, JobLedger(db))
    died_in_0 = {"attempt": 1, "running": [0], "stuck": {}}
    [outcome] = await with_heartbeat(2, died_in_0).run(acts.apply_jobs, inp)
    assert outcome.ok


async def test_a_job_whose_attempts_all_time_out_ends_failed_and_its_neighbour_stands(
    module_factory: Callable[..., Awaitable[ReactorModule]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job that never returns raises nothing: its attempts time out. The
    heartbeat that named it in progress lets a later attempt give it up."""
    monkeypatch.setattr(batch_activities, "UNKNOWN_ERROR_ATTEMPTS", 2)
    real = JobApplier.commit
    hung: list[int] = []

    async def commit(self: JobApplier, batch_id: str, job: PlannedJob) -> Committed:
        if job.key == "hangs":
            hung.append(job.index)
            await asyncio.Event().wait()
        return await real(self, batch_id, job)

    monkeypatch.setattr(JobApplier, "commit", commit)
    config = BatchConfig(local_activity_max_jobs=0, activity_timeout_s=2, heartbeat_timeout_s=5)
    module = await module_factory(lambda b: b.with_batch_config(config))
    reactor = module.reactor
    result = await reactor.execute_batch(
        {"jobs": [create_list("fine", "lane-a"), create_list("hangs", "lane-b")]}
    )
    infos = {i.key: i for i in await asyncio.wait_for(reactor.wait_for_batch(result.batch_id), 60)}
    assert infos["fine"].status is JobStatus.READ_READY, infos["fine"]
    never = infos["hangs"]
    assert never.status is JobStatus.FAILED
    assert never.error is not None and never.error.type == "JobNeverFinished"
    assert "in progress on 1 attempt in a row that timed out or lost their worker" in (
        never.error.message
    )
    assert len(hung) == 1  # the second attempt gave it up instead of running it
    assert await ledger_status(module.database, never.id) == "failed"
