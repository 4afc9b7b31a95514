"""Read-ready announcements travel over NOTIFY, which any database role may
send on any channel. A forged one must not change what `get_job_status` and
`wait_for_job` report, nor which job events the event bus emits: that is the
ledger's and the workflow's word only."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import asyncpg
import orjson
import pytest
from temporalio.service import RPCError

from reactor.api.reactor import BatchResult
from reactor.application.consistency import ConsistencyWaiter
from reactor.application.events import EventBus, JobEvent, ReactorEventTypes
from reactor.application.ready_check import LedgerCheck
from reactor.application.wakeup import Wakeup
from reactor.domain.jobs import JobStatus, OperationSpan
from reactor.storage.notify import READ_MODEL_CHANNEL, channel_name
from tests.conftest import wait_until

TODO = "powerhouse/todo-list"
MISSING_ITEM = [{"type": "DELETE_TODO_ITEM", "input": {"id": "missing"}}]


def commit_form(job_id: str, document_id: str) -> dict[str, Any]:
    """What a worker without read models sends after a commit."""
    return {
        "by": "forger",
        "job_id": job_id,
        "key": "job",
        "document_id": document_id,
        "document_type": TODO,
        "branch": "main",
        "events": [{"ordinal": 1, "type": "ADD_TODO_ITEM", "scope": "global", "index": 0}],
        "read_ready": True,
    }


def range_form(job_id: str, document_id: str, count: int = 1) -> dict[str, Any]:
    """What a worker with read models sends once they caught up."""
    return {
        "by": "forger",
        "job_id": job_id,
        "key": "job",
        "document_id": document_id,
        "branch": "main",
        "scope": "global",
        "index": 0,
        "count": count,
        "read_ready": True,
    }


async def forge(module: Any, database_url: str, channel: str, payload: dict[str, Any]) -> None:
    """Sends `payload` from a connection of its own, as any role could, and
    returns once the reactor's LISTEN connection handed it over (the test's
    handler runs after the reactor's own, for the same notification)."""
    nonce = uuid.uuid4().hex
    arrived = asyncio.Event()

    def saw(ch: str, p: dict[str, Any]) -> None:
        if ch == channel and p.get("nonce") == nonce:
            arrived.set()

    remove = module.listener.add_handler(saw)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "SELECT pg_notify($1, $2)", channel, orjson.dumps({**payload, "nonce": nonce}).decode()
        )
        await asyncio.wait_for(arrived.wait(), 10)
    finally:
        remove()
        await conn.close()


def hold_workflow_results(reactor: Any) -> asyncio.Event:
    """Holds back every batch workflow's result from `reactor` until the
    returned event is set: while held, only an announcement could answer
    `wait_for_job`."""
    gate = asyncio.Event()

    async def held(batch_id: str) -> Any:
        await gate.wait()
        return await reactor._poll_result(batch_id)

    reactor._batch_results.poll = held
    return gate


def commit_only_form(job_id: str, document_id: str) -> dict[str, Any]:
    """What a worker with read models sends after a commit (not read-ready yet)."""
    payload = commit_form(job_id, document_id)
    del payload["read_ready"]
    return payload


def job_events(bus: EventBus) -> list[tuple[str, str]]:
    """Every job event the bus emits from now on, as (event type, job id)."""
    seen: list[tuple[str, str]] = []

    def record(event_type: str, event: JobEvent) -> None:
        seen.append((event_type, event.job_id))

    for event_type in ReactorEventTypes:
        bus.subscribe(event_type, record)
    return seen


def hold_final_jobs(reactor: Any) -> asyncio.Event:
    """Holds back the final JobInfos the job tracker fetches once a batch
    closed, until the returned event is set: meanwhile the batch's jobs are
    still followed although their workflow has finished."""
    gate = asyncio.Event()
    fetch = reactor.batch_jobs

    async def held(batch_id: str, page_size: int = 500) -> Any:
        await gate.wait()
        return await fetch(batch_id, page_size)

    reactor.batch_jobs = held
    return gate


async def forge_all_forms(module: Any, database_url: str, job_id: str, document_id: str) -> None:
    """A commit, a read-ready commit and a read models' announcement, all forged."""
    await forge(module, database_url, channel_name(), commit_only_form(job_id, document_id))
    await forge(module, database_url, channel_name(), commit_form(job_id, document_id))
    await forge(module, database_url, READ_MODEL_CHANNEL, range_form(job_id, document_id))


async def failed_job(reactor: Any, document_id: str) -> Any:
    created = await reactor.create(TODO, document_id=document_id)
    await reactor.wait_for_job(created.id, timeout=30)
    job = await reactor.execute(document_id, "main", MISSING_ITEM)
    [final] = await reactor.wait_for_batch(job.batch_id)
    assert final.status is JobStatus.FAILED
    return job


async def failing_batch_not_run(reactor: Any, document_id: str) -> BatchResult:
    """Job "job" will fail (its item is missing), submitted with job
    "create" that creates its document: for tests that forge announcements
    before any worker has run them."""
    batch: BatchResult = await reactor.execute_batch(
        {
            "jobs": [
                {
                    "key": "create",
                    "document_id": document_id,
                    "scope": "document",
                    "actions": [{"type": "CREATE_DOCUMENT", "input": {"document_type": TODO}}],
                },
                {
                    "key": "job",
                    "document_id": document_id,
                    "actions": MISSING_ITEM,
                    "depends_on": ["create"],
                },
            ]
        }
    )
    return batch


async def test_a_forged_read_ready_on_either_channel_leaves_a_failed_job_failed(
    module_factory: Any, database_url: str
) -> None:
    module = await module_factory()
    reactor = module.reactor
    job = await failed_job(reactor, "forged")
    await forge(module, database_url, channel_name(), commit_form(job.id, "forged"))
    await forge(module, database_url, READ_MODEL_CHANNEL, range_form(job.id, "forged"))
    status = await reactor.get_job_status(job.id)
    assert status.status is JobStatus.FAILED and status.consistency_token is None
    waited = await reactor.wait_for_job(job.id, timeout=30)
    assert waited.status is JobStatus.FAILED and waited.error is not None


async def test_a_forged_read_ready_that_arrives_while_waiting_is_not_the_answer(
    module_factory: Any, database_url: str
) -> None:
    """The workflow's result is held back while the forged notice arrives:
    `wait_for_job` keeps waiting, and answers FAILED once the workflow does."""
    module = await module_factory()
    reactor = module.reactor
    job = await failed_job(reactor, "forged-live")
    held = hold_workflow_results(reactor)
    waiting = asyncio.ensure_future(reactor.wait_for_job(job.id, timeout=30))
    await forge(module, database_url, channel_name(), commit_form(job.id, "forged-live"))
    await forge(module, database_url, READ_MODEL_CHANNEL, range_form(job.id, "forged-live"))
    # The forged notices were handed over; the confirmation they started
    # ends with a database round trip, so let a few of those pass.
    for _ in range(3):
        await reactor.ledger.outcome(job.id)
    assert not waiting.done() or waiting.result().status is not JobStatus.READ_READY
    held.set()
    info = await waiting
    assert info.status is JobStatus.FAILED


async def test_a_forged_read_ready_for_a_job_that_has_not_run_is_not_believed(
    module_factory: Any, database_url: str
) -> None:
    """No worker yet: the forged notice arrives first; the job then runs,
    fails, and that is what both calls report."""
    module = await module_factory(worker=False)
    reactor = module.reactor
    batch = await failing_batch_not_run(reactor, "not-yet")
    job = batch.jobs["job"]
    await forge(module, database_url, channel_name(), commit_form(job.id, "not-yet"))
    await forge(module, database_url, READ_MODEL_CHANNEL, range_form(job.id, "not-yet"))
    try:
        # With no worker the workflow's query is not answered: a status that
        # comes at all can only come from the (forged) announcements.
        early = await asyncio.wait_for(reactor.get_job_status(job.id), 2)
    except (RPCError, TimeoutError):
        early = None
    assert early is None or early.status is not JobStatus.READ_READY
    waiting = asyncio.ensure_future(reactor.wait_for_job(job.id, timeout=60))
    for _ in range(3):
        await reactor.ledger.outcome(job.id)
    assert not waiting.done()
    async with module.create_worker():
        info = await waiting
        assert info.status is JobStatus.FAILED
        assert (await reactor.get_job_status(job.id)).status is JobStatus.FAILED


async def test_an_announcement_claiming_too_many_operations_is_dropped(
    module_factory: Any, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A count past the most operations a job may have is not read at all
    (no coordinates are built for it), and the drop is logged at debug."""
    module = await module_factory()
    reactor = module.reactor
    job = await failed_job(reactor, "huge")
    with caplog.at_level(logging.DEBUG, logger="reactor.notices"):
        await forge(module, database_url, READ_MODEL_CHANNEL, range_form(job.id, "huge", 50_000))
    status = await reactor.get_job_status(job.id)
    assert status.status is JobStatus.FAILED and status.consistency_token is None
    assert any("dropped" in r.getMessage() and job.id in r.getMessage() for r in caplog.records)
    assert (await reactor.wait_for_job(job.id, timeout=30)).status is JobStatus.FAILED


async def test_with_read_models_the_ledger_confirms_only_once_they_indexed_the_job(
    module_factory: Any,
) -> None:
    """For a reactor built with read models, an applied job is read-ready
    only once every one of them tracked a position at or past its last
    operation (what a consistency token waits for)."""
    module = await module_factory()
    reactor = module.reactor
    created = await reactor.create(TODO, document_id="indexed")
    await reactor.wait_for_job(created.id, timeout=30)
    job = await reactor.execute(
        "indexed", "main", [{"type": "ADD_TODO_ITEM", "input": {"id": "1", "text": "a"}}]
    )
    await reactor.wait_for_batch(job.batch_id)
    claim = OperationSpan(document_id="indexed", scope="global", branch="main", operation_index=0)
    check = LedgerCheck(reactor.ledger, ConsistencyWaiter(module.database, ["lagging"], Wakeup()))
    assert await check(job.id, claim) is None  # never indexed anything
    async with module.database.pool.acquire() as conn:
        last = await conn.fetchrow(
            "SELECT tx_id, ordinal FROM reactor_operations WHERE job_id = $1", job.id
        )
        await conn.execute(
            "INSERT INTO reactor_read_model_tracking (name, last_tx, last_ordinal) "
            "VALUES ('lagging', $1, $2)",
            last["tx_id"],
            last["ordinal"] - 1,
        )
        assert await check(job.id, claim) is None  # one short
        await conn.execute(
            "UPDATE reactor_read_model_tracking SET last_ordinal = $1 WHERE name = 'lagging'",
            last["ordinal"],
        )
    spans = await check(job.id, claim)
    assert spans is not None and [(s.operation_index, s.count) for s in spans] == [(0, 1)]
    failed = await failed_job(reactor, "indexed-failed")
    assert await LedgerCheck(reactor.ledger, reactor.consistency)(failed.id, claim) is None


async def test_a_forged_commit_announcement_fires_no_ready_event_for_a_job_that_failed(
    module_factory: Any, database_url: str
) -> None:
    """The job failed (its ledger row says so) and its batch is still
    followed when the forged announcements arrive: none of them moves it past
    PENDING on the event bus, and the workflow's FAILED is its next event."""
    module = await module_factory()
    reactor = module.reactor
    created = await reactor.create(TODO, document_id="events")
    await reactor.wait_for_job(created.id, timeout=30)
    seen = job_events(module.event_bus)
    held = hold_final_jobs(reactor)
    job = await reactor.execute("events", "main", MISSING_ITEM)

    async def failed() -> bool:
        outcome = await reactor.ledger.outcome(job.id)
        return outcome is not None and outcome["status"] == "failed"

    await wait_until(failed, 30, "the job's ledger row")
    await forge_all_forms(module, database_url, job.id, "events")

    async def refuted() -> bool:
        return reactor.job_tracker.refuted == 3

    await wait_until(refuted, 30, "the ledger's answer to each announcement")
    assert [t for t, j in seen if j == job.id] == ["JOB_PENDING"]
    held.set()

    async def ended() -> bool:
        return ("JOB_FAILED", job.id) in seen

    await wait_until(ended, 30, "the job's FAILED event")
    assert [t for t, j in seen if j == job.id] == ["JOB_PENDING", "JOB_FAILED"]


async def test_a_forged_commit_announcement_before_the_job_ran_fires_no_ready_event(
    module_factory: Any, database_url: str
) -> None:
    """No worker yet: the forged announcements come first; the job then
    runs and fails, and its events say only that."""
    module = await module_factory(worker=False)
    reactor = module.reactor
    seen = job_events(module.event_bus)
    batch = await failing_batch_not_run(reactor, "events-early")
    job = batch.jobs["job"]
    await forge_all_forms(module, database_url, job.id, "events-early")

    async def refuted() -> bool:
        return reactor.job_tracker.refuted == 3

    await wait_until(refuted, 30, "the ledger's answer to each announcement")
    assert [t for t, j in seen if j == job.id] == ["JOB_PENDING"]
    async with module.create_worker():

        async def ended() -> bool:
            return ("JOB_FAILED", job.id) in seen

        await wait_until(ended, 60, "the job's FAILED event")
    assert [t for t, j in seen if j == job.id] == ["JOB_PENDING", "JOB_FAILED"]
    create = batch.jobs["create"].id
    assert [t for t, j in seen if j == create] == [
        "JOB_PENDING",
        "JOB_RUNNING",
        "JOB_WRITE_READY",
        "JOB_READ_READY",
    ]


async def test_a_notification_that_is_not_a_json_object_is_dropped_with_a_debug_log(
    module_factory: Any, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """No handler sees it, so none fails on it (a failing handler is logged
    as an error, with its traceback: not what a forged payload may cause)."""
    module = await module_factory()
    conn = await asyncpg.connect(database_url)
    try:
        with caplog.at_level(logging.DEBUG, logger="reactor"):
            for payload in ("[1]", '"job"', "42", "null"):
                await conn.execute("SELECT pg_notify($1, $2)", channel_name(), payload)
            # Sent after them: handed over once they were.
            await forge(module, database_url, channel_name(), {"by": "forger"})
    finally:
        await conn.close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    dropped = [r.getMessage() for r in caplog.records if "not an object" in r.getMessage()]
    assert len(dropped) == 4
