"""A real worker running the sync channel workflow with scripted rounds: the
workflow's loop, backoff, wait, signal and continue-as-new are driven on the
real Temporal server while the rounds return what a test chose."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.worker import Worker

from activities.sync import RoundResult, SyncRoundInput, WaitInput, WaitResult
from reactor.domain.channel_status import SyncInput
from workflows.sync import SyncWorkflow, channel_workflow_id

IDLE = RoundResult(ok=True)


def failed(error: str = "RemoteUnavailableError: connection refused") -> RoundResult:
    return RoundResult(ok=False, error=error)


def moved(pulled: int = 1, pushed: int = 1) -> RoundResult:
    return RoundResult(ok=True, pulled=pulled, pushed=pushed)


class ScriptedSync:
    """Rounds return `script` in order, then IDLE. A round whose number is in
    `held` waits for `release` (so a test can look at the workflow between
    two rounds). Waits last until cancelled or their timeout."""

    def __init__(self, script: Sequence[RoundResult], held: Sequence[int] = ()) -> None:
        self.script = list(script)
        self.held = set(held)
        self.rounds = 0
        self.waits = 0
        self.waits_cancelled = 0
        self.release = asyncio.Event()
        self.holding = asyncio.Event()

    @activity.defn(name="sync_round")
    async def sync_round(self, inp: SyncRoundInput) -> RoundResult:
        self.rounds += 1
        number = self.rounds
        if number in self.held:
            self.holding.set()
            await self.release.wait()
        return self.script[number - 1] if number <= len(self.script) else IDLE

    @activity.defn(name="wait_for_changes")
    async def wait_for_changes(self, inp: WaitInput) -> WaitResult:
        self.waits += 1
        deadline = asyncio.get_running_loop().time() + inp.timeout_s
        try:
            while asyncio.get_running_loop().time() < deadline:
                activity.heartbeat()
                await asyncio.sleep(0.1)
        except asyncio.CancelledError:
            self.waits_cancelled += 1
            raise
        return WaitResult(changed=False)


@asynccontextmanager
async def sync_worker(client: Client, task_queue: str, stubs: ScriptedSync) -> AsyncIterator[None]:
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[SyncWorkflow],
        activities=[stubs.sync_round, stubs.wait_for_changes],
    ):
        yield


async def start(
    client: Client, task_queue: str, **settings: float | int
) -> WorkflowHandle[SyncWorkflow, None]:
    """A channel workflow of a fresh name; `settings` override SyncInput's."""
    name = f"ch-{uuid.uuid4().hex[:8]}"
    return await client.start_workflow(
        SyncWorkflow.run,
        SyncInput(name=name).model_copy(update=settings),
        id=channel_workflow_id(name),
        task_queue=task_queue,
    )


async def run_chain(client: Client, workflow_id: str, first_run: str) -> list[WorkflowHistory]:
    """The histories of a workflow's runs from `first_run`, following
    continue-as-new, while they are closed."""
    histories = []
    run_id: str | None = first_run
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        histories.append(history)
        last = history.events[-1]
        run_id = None
        if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return histories


def timers_s(history: WorkflowHistory) -> list[float]:
    """The durations of the timers a run started, in order."""
    return [
        e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta().total_seconds()
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]
