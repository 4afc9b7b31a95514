"""What a person opening a batch in the Temporal UI sees: the workflow's
current details (counts, failed jobs and why, chunks in flight), activity
summaries naming their jobs; and how chunks end: a deterministic error fails
the chunk's jobs instead of retrying, a local chunk that keeps failing moves
to a regular activity, a chunk with many actions runs as a regular one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowHistory
from temporalio.exceptions import ApplicationError

from activities.batch import ApplyJobsInput
from reactor.api.reactor import Reactor
from reactor.domain.jobs import JobOutcome, JobStatus, workflow_id_for
from tests.support.batches import create_list, inline_with_failures, many_actions, stored
from tests.support.replay import replay
from tests.support.stub_worker import apply_jobs_worker
from workflows.batch import LOCAL_ATTEMPTS


async def current_details(reactor: Reactor, batch_id: str) -> str:
    handle = reactor.client.get_workflow_handle(workflow_id_for(batch_id))
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return str(metadata.current_details)


async def history(reactor: Reactor, batch_id: str) -> WorkflowHistory:
    return await reactor.client.get_workflow_handle(workflow_id_for(batch_id)).fetch_history()


async def events(reactor: Reactor, batch_id: str) -> list[HistoryEvent]:
    return (await history(reactor, batch_id)).events


def scheduled_summaries(recorded: list[HistoryEvent]) -> list[str]:
    """The summaries of the regular activities the workflow scheduled."""
    return [
        json.loads(e.user_metadata.summary.data)
        for e in recorded
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def test_failed_jobs_and_counts_are_in_the_current_details(
    reactor: Reactor, worker: None
) -> None:
    result = await reactor.execute_batch(inline_with_failures("d1"))
    jobs = {j.key: j for j in await asyncio.wait_for(reactor.wait_for_batch(result.batch_id), 60)}
    assert jobs["bad"].status is JobStatus.FAILED and jobs["child"].status is JobStatus.FAILED
    details = await current_details(reactor, result.batch_id)
    assert f"`{result.batch_id}` finished: 5 jobs (READ_READY 3, FAILED 2)" in details
    assert (
        "- `bad` (document `d1-list`): **ReducerError**: actions[0] UPDATE_TODO_ITEM: "
        "todo item 'missing' does not exist" in details
    )
    assert (
        "- `child` (document `d1-list`): **DependencyFailed**: dependency 'bad' failed "
        "(failed dependency `bad`)" in details
    )
    assert "In flight" not in details


async def test_regular_activity_summaries_name_their_first_jobs(
    reactor: Reactor, worker: None
) -> None:
    result = await reactor.execute_batch(stored("d2", 150))
    await asyncio.wait_for(reactor.wait_for_batch(result.batch_id), 60)
    assert scheduled_summaries(await events(reactor, result.batch_id)) == [
        "apply 152 jobs (152 actions) to 2 documents: c0, c1, j0 and 149 more"
    ]


async def test_a_chunk_with_many_actions_runs_as_a_regular_activity(
    reactor: Reactor, worker: None
) -> None:
    result = await reactor.execute_batch(many_actions("d3", 2_001))
    jobs = await asyncio.wait_for(reactor.wait_for_batch(result.batch_id), 60)
    assert [j.status for j in jobs] == [JobStatus.READ_READY, JobStatus.READ_READY]
    # Both jobs in one chunk: 2 jobs, but more actions than a local activity takes.
    assert scheduled_summaries(await events(reactor, result.batch_id)) == [
        "apply 2 jobs (2002 actions) to 1 document: create, big"
    ]


@pytest.mark.parametrize(
    ("request_of", "jobs_in_chunk"),
    [(inline_with_failures, 5), (lambda p: stored(p, 150), 152)],
    ids=["local-activity", "regular-activity"],
)
async def test_a_deterministic_chunk_error_fails_its_jobs_once(
    reactor: Reactor, request_of: Callable[[str], dict[str, Any]], jobs_in_chunk: int
) -> None:
    calls: list[bool] = []

    async def broken(inp: ApplyJobsInput) -> list[JobOutcome]:
        calls.append(activity.info().is_local)
        # As the apply activity gives up a chunk of which it decided nothing.
        raise ApplicationError(
            "model code rejected the chunk", type="ValueError", non_retryable=True
        )

    async with apply_jobs_worker(reactor, broken):
        result = await reactor.execute_batch(request_of("d4"))
        jobs = await asyncio.wait_for(reactor.wait_for_batch(result.batch_id), 60)
        details = await current_details(reactor, result.batch_id)
    await replay(await history(reactor, result.batch_id), reactor.client.data_converter)
    assert calls == [jobs_in_chunk <= 100]  # one attempt, not retried
    assert len(jobs) == jobs_in_chunk
    assert all(j.status is JobStatus.FAILED for j in jobs)
    assert all(
        j.error is not None
        and (j.error.type, j.error.message) == ("ValueError", "model code rejected the chunk")
        for j in jobs
    )
    assert f"FAILED {jobs_in_chunk})" in details
    first = jobs[0]
    assert (
        f"- `{first.key}` (document `{first.document_id}`): "
        "**ValueError**: model code rejected the chunk" in details
    )
    if jobs_in_chunk > 20:
        assert f"- and {jobs_in_chunk - 20} more" in details


async def test_a_raw_python_error_is_retried_until_the_activity_decides(
    reactor: Reactor,
) -> None:
    """The workflow names no error type non-retryable: the jobs of a chunk
    that raised a ValueError once (some of them may be written) are not
    failed for it."""
    calls: list[int] = []

    async def once(inp: ApplyJobsInput) -> list[JobOutcome]:
        calls.append(activity.info().attempt)
        if len(calls) == 1:
            raise ValueError("a bug that a retry gets past")
        return [JobOutcome(index=i, ok=True) for i in inp.indices]

    async with apply_jobs_worker(reactor, once):
        result = await reactor.execute_batch(
            {"jobs": [create_list("a", "d6-a"), create_list("b", "d6-b")]}
        )
        jobs = await asyncio.wait_for(reactor.wait_for_batch(result.batch_id), 60)
        recorded = await history(reactor, result.batch_id)
    await replay(recorded, reactor.client.data_converter)
    assert calls == [1, 2]
    assert [j.status for j in jobs] == [JobStatus.READ_READY, JobStatus.READ_READY]


async def test_a_local_chunk_that_keeps_failing_moves_to_a_regular_activity(
    reactor: Reactor,
) -> None:
    calls: list[bool] = []

    async def flaky_when_local(inp: ApplyJobsInput) -> list[JobOutcome]:
        local = activity.info().is_local
        calls.append(local)
        if local:
            raise ConnectionError("database unreachable from this worker")
        return [JobOutcome(index=i, ok=True) for i in inp.indices]

    async with apply_jobs_worker(reactor, flaky_when_local):
        result = await reactor.execute_batch(
            {"jobs": [create_list("a", "d5-a"), create_list("b", "d5-b")]}
        )
        jobs = await asyncio.wait_for(reactor.wait_for_batch(result.batch_id), 60)
        recorded = await history(reactor, result.batch_id)
    await replay(recorded, reactor.client.data_converter)
    assert calls == [True] * LOCAL_ATTEMPTS + [False]
    assert [j.status for j in jobs] == [JobStatus.READ_READY, JobStatus.READ_READY]
    assert scheduled_summaries(list(recorded.events)) == [
        "apply 2 jobs (2 actions) to 2 documents: a, b"
    ]
