"""The sync channel workflow on the real Temporal server, its rounds
scripted: a failing round backs off with a doubling timer and shows why in
its status and current details, a round that succeeds resets the backoff, a
round that moved operations is followed at once by the next, the `wake`
signal ends a wait for changes, and continue-as-new carries the counters."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from reactor.domain.channel_status import ChannelPhase, ChannelState, ChannelStatus
from reactor.runtime.temporal import connect
from tests.conftest import Stack, wait_until
from tests.support.sync_stubs import (
    ScriptedSync,
    failed,
    moved,
    run_chain,
    start,
    sync_worker,
    timers_s,
)
from workflows.sync import SyncWorkflow, start_channel

E = EventType


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[Client]:
    yield await connect(stack.temporal_address)


async def status(handle: WorkflowHandle[SyncWorkflow, None]) -> ChannelStatus:
    return await handle.query(SyncWorkflow.status)


async def details(handle: WorkflowHandle[SyncWorkflow, None]) -> str:
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return str(metadata.current_details)


async def test_a_failing_round_backs_off_doubling_and_success_resets(
    client: Client, task_queue: str
) -> None:
    error = "RemoteUnavailableError: connection refused by 127.0.0.1:9"
    stubs = ScriptedSync([failed(error)] * 3 + [moved(2, 1)], held=[3])
    async with sync_worker(client, task_queue, stubs):
        handle = await start(client, task_queue, initial_backoff_s=0.05, max_backoff_s=0.1)
        await wait_until(lambda: _set(stubs.holding), 30, "the third round")
        seen = await status(handle)
        assert seen.state == ChannelState.FAILED
        assert seen.phase == ChannelPhase.SYNCING
        assert seen.attempts == 2
        assert seen.last_error == error
        assert seen.backoff_s == 0.1
        assert seen.rounds == 2
        stubs.release.set()
        await wait_until(_waits(stubs, 1), 30, "the wait after the rounds")
        seen = await status(handle)
        await handle.terminate("test over")
    history = await handle.fetch_history()
    assert seen.state == ChannelState.SUCCEEDED
    assert seen.phase == ChannelPhase.WAITING
    assert (seen.attempts, seen.backoff_s, seen.last_error) == (0, 0.0, None)
    assert (seen.rounds, seen.pulled, seen.pushed) == (5, 2, 1)
    # Each failure is followed by a timer (doubling to the maximum) before the
    # next round; the round that moved operations is followed at once by the
    # next, and the idle round after it by the wait.
    assert timers_s(history) == [0.05, 0.1, 0.1]
    steps = [
        "timer"
        if e.event_type == E.EVENT_TYPE_TIMER_STARTED
        else e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type in (E.EVENT_TYPE_TIMER_STARTED, E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    ]
    assert steps == [
        "sync_round",
        "timer",
        "sync_round",
        "timer",
        "sync_round",
        "timer",
        "sync_round",
        "sync_round",
        "wait_for_changes",
    ]


async def test_status_and_current_details_show_a_failing_channel(
    client: Client, task_queue: str
) -> None:
    stubs = ScriptedSync([failed("RemoteRejectedError: 422 operations[0].hash")] * 2)
    async with sync_worker(client, task_queue, stubs):
        handle = await start(client, task_queue, initial_backoff_s=3600, max_backoff_s=3600)
        name = (await status(handle)).name

        async def backing_off() -> bool:
            return (await status(handle)).phase == ChannelPhase.BACKING_OFF

        await wait_until(backing_off, 30, "the backoff")
        seen = await status(handle)
        shown = await details(handle)
        await handle.terminate("test over")
    assert seen.name == name
    assert seen.state == ChannelState.FAILED
    assert (seen.attempts, seen.rounds, seen.backoff_s) == (1, 1, 3600)
    assert seen.last_error == "RemoteRejectedError: 422 operations[0].hash"
    assert seen.last_round_at is not None
    assert stubs.rounds == 1  # the backoff holds the next round back
    assert f"**sync `{name}`**" in shown
    assert "FAILED 1× in a row" in shown
    assert "next round in 3600 s" in shown
    assert "last error: RemoteRejectedError: 422 operations[0].hash" in shown


async def test_wake_ends_a_wait_for_changes(client: Client, task_queue: str) -> None:
    stubs = ScriptedSync([])
    async with sync_worker(client, task_queue, stubs):
        handle = await start(client, task_queue, poll_interval_s=3600)
        await wait_until(_waits(stubs, 1), 30, "the first wait")
        assert stubs.rounds == 1
        await handle.signal(SyncWorkflow.wake)

        await wait_until(_waits(stubs, 2), 30, "a second round and its wait")
        seen = await status(handle)
        await handle.terminate("test over")
    history = await handle.fetch_history()
    kinds = [e.event_type for e in history.events]
    assert stubs.rounds == 2
    assert seen.rounds == 2
    assert kinds.count(E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) == 1
    assert kinds.count(E.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED) == 1
    # The wait was cancelled by the signal, not ended by its timeout.
    signaled = kinds.index(E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    cancelled = kinds.index(E.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED)
    assert signaled < cancelled
    assert E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED not in kinds[signaled:cancelled]


async def test_wake_ends_a_backoff(client: Client, task_queue: str) -> None:
    stubs = ScriptedSync([failed(), moved()])
    async with sync_worker(client, task_queue, stubs):
        handle = await start(client, task_queue, initial_backoff_s=3600, poll_interval_s=3600)

        async def backing_off() -> bool:
            return (await status(handle)).phase == ChannelPhase.BACKING_OFF

        await wait_until(backing_off, 30, "the backoff after a failed round")
        await handle.signal(SyncWorkflow.wake)
        await wait_until(_waits(stubs, 1), 30, "the round after the wake, then a wait")
        seen = await status(handle)
        await handle.terminate("test over")
    history = await handle.fetch_history()
    kinds = [e.event_type for e in history.events]
    # The hour-long backoff timer was cancelled by the signal, not fired.
    assert kinds.count(E.EVENT_TYPE_TIMER_CANCELED) == 1
    assert E.EVENT_TYPE_TIMER_FIRED not in kinds
    assert stubs.rounds >= 2 and seen.state == ChannelState.SUCCEEDED


async def test_continue_as_new_keeps_counters_and_backoff(client: Client, task_queue: str) -> None:
    stubs = ScriptedSync([failed(), failed(), moved(1, 2), moved(1, 2), moved(1, 2)])
    async with sync_worker(client, task_queue, stubs):
        handle = await start(client, task_queue, max_rounds=1, initial_backoff_s=0.05)
        first_run = handle.result_run_id
        assert first_run is not None
        await wait_until(_waits(stubs, 1), 30, "the wait after the rounds")
        latest = client.get_workflow_handle_for(SyncWorkflow.run, handle.id)
        seen = await status(latest)
        first = await client.get_workflow_handle(handle.id, run_id=first_run).describe()
        await latest.terminate("test over")
    runs = await run_chain(client, handle.id, first_run)
    assert first.status == WorkflowExecutionStatus.CONTINUED_AS_NEW
    assert len(runs) == 6  # one round per run
    # The second run's backoff doubles the first's: it knew the attempts.
    assert [timers_s(r) for r in runs[:2]] == [[0.05], [0.1]]
    assert (seen.rounds, seen.pulled, seen.pushed) == (6, 3, 6)
    assert (seen.state, seen.attempts, seen.backoff_s) == (ChannelState.SUCCEEDED, 0, 0.0)


async def test_starting_a_channel_twice_wakes_the_running_workflow(
    client: Client, task_queue: str
) -> None:
    stubs = ScriptedSync([])
    async with sync_worker(client, task_queue, stubs):
        name = f"twice-{uuid.uuid4().hex[:6]}"
        handle = await start_channel(client, name, task_queue)
        await wait_until(_waits(stubs, 1), 30, "the first wait")
        again = await start_channel(client, name, task_queue)

        await wait_until(_waits(stubs, 2), 30, "a second round and its wait")
        await handle.terminate("test over")
    assert again.result_run_id == handle.result_run_id
    assert stubs.rounds == 2


async def _set(event: asyncio.Event) -> bool:
    return event.is_set()


def _waits(stubs: ScriptedSync, count: int) -> Callable[[], Awaitable[bool]]:
    async def reached() -> bool:
        return stubs.waits >= count

    return reached
