"""Records the workflow histories that tests/test_replay.py replays.

Run it after a change to the workflows that running workflows may not
survive has been decided on (new histories replace the old ones, so the
replay test then guards the new code):

    .venv/bin/python -m pytest tests/histories/record.py

The normal suite does not collect this file (its name is not test_*.py).
Each function runs one of the workflows' paths on the test stack (real
PostgreSQL, real Temporal server; only the recordings that need a chunk, a
drain or a sync round to end a given way replace those activities) and writes the
closed run's history to tests/histories/<name>.json."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.batch import ApplyJobsInput
from activities.reactions import DrainInput, DrainOutput
from reactor.api.reactor import Reactor
from reactor.domain.jobs import JobOutcome, JobStatus, workflow_id_for
from reactor.domain.workflow_io import BatchConfig, ReactionInput
from tests.conftest import wait_until
from tests.support.batches import add_item, create_list, inline_with_failures, many_actions, stored
from tests.support.stub_worker import apply_jobs_worker
from tests.support.sync_stubs import IDLE, ScriptedSync, failed, moved, start, sync_worker
from workflows.reaction import TASK_TIMEOUT, ReactionWorkflow
from workflows.sync import SyncWorkflow

HISTORIES = Path(__file__).parent


def write(name: str, history: WorkflowHistory) -> None:
    text = json.dumps(history.to_json_dict(), indent=2) + "\n"
    (HISTORIES / f"{name}.json").write_text(text)


async def run_batch(reactor: Reactor, name: str, request: dict[str, Any]) -> list[JobStatus]:
    result = await reactor.execute_batch(request)
    jobs = await asyncio.wait_for(reactor.wait_for_batch(result.batch_id), 120)
    handle = reactor.client.get_workflow_handle(workflow_id_for(result.batch_id))
    write(name, await handle.fetch_history())
    return [j.status for j in jobs]


async def test_record_a_single_job(reactor: Reactor, worker: None) -> None:
    statuses = await run_batch(
        reactor, "batch-single-job", {"jobs": [create_list("only", "h-single")]}
    )
    assert statuses == [JobStatus.READ_READY]


async def test_record_chunks_with_dependencies(reactor: Reactor, worker: None) -> None:
    """Chunks of three jobs, two at a time: dependents wait for chunks that
    are still running."""
    reactor.config.batch = BatchConfig(chunk_size=3, max_parallel_chunks=2, heartbeat_timeout_s=5)
    docs = ["h-deps-a", "h-deps-b", "h-deps-c"]
    jobs = [create_list(f"create-{d}", d) for d in docs]
    jobs += [add_item(f"add-{d}-{i}", d, str(i), [f"create-{d}"]) for d in docs for i in range(3)]
    jobs.append(add_item("last", docs[0], "last", [f"add-{d}-2" for d in docs]))
    statuses = await run_batch(reactor, "batch-chunks-with-dependencies", {"jobs": jobs})
    assert statuses == [JobStatus.READ_READY] * len(jobs)


async def test_record_a_failing_job_and_its_dependent(reactor: Reactor, worker: None) -> None:
    statuses = await run_batch(reactor, "batch-failing-job", inline_with_failures("h-fail"))
    assert statuses.count(JobStatus.FAILED) == 2


async def test_record_a_plan_loaded_by_pages(reactor: Reactor, worker: None) -> None:
    """Over a thousand stored jobs: the plan is loaded by a local activity,
    full chunks run as regular activities, the remainder as a local one."""
    statuses = await run_batch(reactor, "batch-plan-by-pages", stored("h-pages", 1000))
    assert statuses == [JobStatus.READ_READY] * 1002


async def test_record_a_job_with_many_actions(reactor: Reactor, worker: None) -> None:
    statuses = await run_batch(reactor, "batch-many-actions", many_actions("h-many", 2_100))
    assert statuses == [JobStatus.READ_READY] * 2


async def test_record_a_local_chunk_escalating(reactor: Reactor) -> None:
    async def flaky_when_local(inp: ApplyJobsInput) -> list[JobOutcome]:
        if activity.info().is_local:
            raise ConnectionError("database unreachable from this worker")
        return [JobOutcome(index=i, ok=True) for i in inp.indices]

    async with apply_jobs_worker(reactor, flaky_when_local):
        statuses = await run_batch(
            reactor,
            "batch-local-chunk-escalates",
            {"jobs": [create_list("a", "h-escalate-a"), create_list("b", "h-escalate-b")]},
        )
    assert statuses == [JobStatus.READ_READY] * 2


async def test_record_a_chunk_rejected_as_a_whole(reactor: Reactor) -> None:
    async def rejected(inp: ApplyJobsInput) -> list[JobOutcome]:
        raise ApplicationError(
            "model code rejected the chunk", type="ValueError", non_retryable=True
        )

    async with apply_jobs_worker(reactor, rejected):
        statuses = await run_batch(
            reactor, "batch-chunk-rejected", inline_with_failures("h-rejected")
        )
    assert statuses == [JobStatus.FAILED] * 5


class ScriptedDrains:
    """Drain results that walk the reaction workflow through its paths: a
    backlog (competing drains fan out), a worker shutting down (the workflow
    waits for a wake signal or its timer), then the last iteration (it
    continues as new)."""

    def __init__(self) -> None:
        self.local_calls = 0

    @activity.defn(name="drain_reaction")
    async def drain_reaction(self, inp: DrainInput) -> DrainOutput:
        if not activity.info().is_local:
            return DrainOutput(handled=1, failed=0, blocked=[], more=False)
        self.local_calls += 1
        if self.local_calls == 1:
            return DrainOutput(handled=3, failed=0, blocked=[], more=True, woken=1)
        if self.local_calls == 2:
            return DrainOutput(handled=0, failed=0, blocked=[], more=False, stopping=True)
        if self.local_calls > 3:
            await asyncio.sleep(0.5)  # the next run, until the recorder ends it
        return DrainOutput(handled=1, failed=1, blocked=["doc-1"], more=False)


@asynccontextmanager
async def reaction_worker(client: Client, task_queue: str) -> AsyncIterator[None]:
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[ReactionWorkflow],
        activities=[ScriptedDrains().drain_reaction],
    )
    task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        await worker.shutdown()
        await asyncio.gather(task, return_exceptions=True)


async def has_event(
    client: Client, workflow_id: str, run_id: str, kind: EventType.ValueType
) -> bool:
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    return any(e.event_type == kind for e in history.events)


async def test_record_a_reaction_until_it_continues_as_new(reactor: Reactor) -> None:
    client = reactor.client
    task_queue = reactor.config.task_queue
    workflow_id = f"reaction-{task_queue}-recorded-{uuid.uuid4().hex[:6]}"
    async with reaction_worker(client, task_queue):
        handle = await client.start_workflow(
            ReactionWorkflow.run,
            ReactionInput(name="recorded", idle_s=0.1, fanout=2, max_iterations=3),
            id=workflow_id,
            task_queue=task_queue,
            start_signal="wake",
            task_timeout=TASK_TIMEOUT,
        )
        run_id = handle.result_run_id
        assert run_id is not None
        # Woken while it waits on its timer after the "stopping" drain.
        timer = EventType.EVENT_TYPE_TIMER_STARTED
        await wait_until(
            lambda: has_event(client, workflow_id, run_id, timer), 60, "the reaction's timer"
        )
        await handle.signal(ReactionWorkflow.wake)
        first_run = client.get_workflow_handle(workflow_id, run_id=run_id)

        async def continued() -> bool:
            status = (await first_run.describe()).status
            return status == WorkflowExecutionStatus.CONTINUED_AS_NEW

        await wait_until(continued, 60, "the reaction to continue as new")
        history = await first_run.fetch_history()
        await client.get_workflow_handle(workflow_id).terminate("recorded")
    kinds = {e.event_type for e in history.events}
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED in kinds
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED in kinds
    write("reaction-wake-continue-as-new", history)


async def test_record_a_sync_channel_until_it_continues_as_new(reactor: Reactor) -> None:
    """A failed round and its backoff, a round that moved operations and the
    one after it at once, an idle round's wait ended by a wake signal, then
    continue-as-new after the run's last round."""
    client = reactor.client
    task_queue = reactor.config.task_queue
    stubs = ScriptedSync([failed(), moved(3, 2), IDLE, moved(1, 0)])
    async with sync_worker(client, task_queue, stubs):
        handle = await start(
            client, task_queue, max_rounds=4, initial_backoff_s=0.05, poll_interval_s=3600
        )
        run_id = handle.result_run_id
        assert run_id is not None

        async def waiting() -> bool:
            return stubs.waits >= 1

        await wait_until(waiting, 60, "the channel's wait")
        await handle.signal(SyncWorkflow.wake)
        first_run = client.get_workflow_handle(handle.id, run_id=run_id)

        async def continued() -> bool:
            status = (await first_run.describe()).status
            return status == WorkflowExecutionStatus.CONTINUED_AS_NEW

        await wait_until(continued, 60, "the channel to continue as new")
        history = await first_run.fetch_history()
        await client.get_workflow_handle(handle.id).terminate("recorded")
    kinds = [e.event_type for e in history.events]
    assert kinds.count(EventType.EVENT_TYPE_TIMER_STARTED) == 1
    assert kinds.count(EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED) == 1
    write("sync-backoff-wake-continue-as-new", history)
