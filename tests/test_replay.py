"""Workflows that are running when new code is deployed go on with it: every
recorded history (tests/histories/, one per path of the workflows) and the
histories of batches run now replay against today's BatchWorkflow,
ReactionWorkflow and SyncWorkflow without a nondeterminism error.

A failing replay means the change breaks running workflows: their next task
fails on every worker with the new code. Keep the commands the workflow
issues for a history it may meet (`workflow.patched` for a new path); only
when breaking them is decided on, re-record the histories from the new code:

    .venv/bin/python -m pytest tests/histories/record.py
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.batch import ApplyJobsInput
from reactor.api.reactor import Reactor
from reactor.domain.batch import PlanEntry
from reactor.domain.batch_details import ChunkInFlight
from reactor.domain.jobs import JobOutcome, JobStatus, workflow_id_for
from reactor.domain.workflow_io import BatchConfig, BatchInput, BatchSummary
from tests.support.batches import inline_with_failures, many_actions, stored
from tests.support.replay import replay, replayed
from workflows.batch import BatchWorkflow

HISTORIES = Path(__file__).parent / "histories"

E = EventType
LOCAL = E.EVENT_TYPE_MARKER_RECORDED  # a local activity's result
REGULAR = E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED

# Each recorded history, with the events (at least this many of each) that
# show it took the path it is named for.
RECORDED: dict[str, dict[EventType.ValueType, int]] = {
    "batch-single-job": {LOCAL: 1},
    "batch-chunks-with-dependencies": {LOCAL: 2},
    "batch-failing-job": {LOCAL: 1},
    "batch-plan-by-pages": {LOCAL: 2, REGULAR: 2},  # the plan page and the last chunk local
    "batch-many-actions": {REGULAR: 1},
    "batch-local-chunk-escalates": {LOCAL: 1, REGULAR: 1},
    "batch-chunk-rejected": {LOCAL: 1},
    "reaction-wake-continue-as-new": {
        LOCAL: 2,
        REGULAR: 2,
        E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: 1,
        E.EVENT_TYPE_TIMER_STARTED: 1,
        E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: 1,
    },
    "sync-backoff-wake-continue-as-new": {
        REGULAR: 5,  # four rounds and a wait
        E.EVENT_TYPE_TIMER_STARTED: 1,
        E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: 1,
        E.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED: 1,
        E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: 1,
    },
}


def recorded(name: str) -> WorkflowHistory:
    return WorkflowHistory.from_json(name, (HISTORIES / f"{name}.json").read_text())


def test_every_recorded_history_is_listed() -> None:
    assert {p.stem for p in HISTORIES.glob("*.json")} == set(RECORDED)


@pytest.mark.parametrize("name", sorted(RECORDED))
async def test_a_recorded_history_replays(name: str) -> None:
    history = recorded(name)
    kinds = [e.event_type for e in history.events]
    for kind, least in RECORDED[name].items():
        assert kinds.count(kind) >= least, (name, E.Name(kind))
    await replay(history, pydantic_data_converter)


@workflow.defn(name="BatchWorkflow", sandboxed=False)
class EveryChunkRegular(BatchWorkflow):
    """Today's batch workflow, changed the way a careless edit would: every
    chunk runs as a regular activity. (Not sandboxed: the sandbox would
    re-import this test module; what is tested is the commands it issues.)"""

    @workflow.run
    async def run(self, inp: BatchInput) -> BatchSummary:
        return await super().run(inp)

    async def _apply(
        self,
        arg: ApplyJobsInput,
        chunk: ChunkInFlight,
        entries: list[PlanEntry],
        cfg: BatchConfig,
    ) -> list[JobOutcome]:
        chunk.local = False
        return await super()._apply(arg, chunk, entries, cfg)


async def test_a_changed_workflow_fails_to_replay() -> None:
    result = await replayed(
        recorded("batch-single-job"), pydantic_data_converter, workflows=[EveryChunkRegular]
    )
    assert isinstance(result.replay_failure, workflow.NondeterminismError)


@pytest.mark.usefixtures("worker")
async def test_histories_of_batches_run_now_replay(reactor: Reactor) -> None:
    requests = {
        "inline": inline_with_failures("r1"),
        "stored": stored("r2", 150),
        "plan-by-pages": stored("r3", 1100),
        "many-actions": many_actions("r4", 2_100),
    }
    for name, request in requests.items():
        result = await reactor.execute_batch(request)
        jobs = await reactor.wait_for_batch(result.batch_id)
        assert all(j.status in (JobStatus.READ_READY, JobStatus.FAILED) for j in jobs), name
        handle = reactor.client.get_workflow_handle(workflow_id_for(result.batch_id))
        await replay(await handle.fetch_history(), reactor.client.data_converter)
