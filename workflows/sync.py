"""SyncWorkflow: one long-running workflow per sync channel, `sync-<name>`.

Each round (an activity) pulls the remote's operations after the channel's
pull cursor into this reactor and pushes this reactor's operations after its
push cursor to the remote; the cursors live in the channel's row, so a
workflow started again goes on where the last one stopped. A round that
moved operations is followed at once by the next; one that moved nothing by
a wait for a change on either side (an activity woken by the remote's event
stream and by local commits, or the `wake` signal, with the poll interval as
the safety net). A failed round (the remote down, a load rejected) is
followed by a timer that doubles per failure in a row: the channel retries
for as long as it exists and blocks nothing but itself, and its status query
and current details show why. Histories stay short with continue-as-new.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.sync import RoundResult, SyncActivities, SyncRoundInput, WaitInput
    from reactor.domain.channel_status import (
        ChannelPhase,
        ChannelState,
        ChannelStatus,
        SyncInput,
        backoff_after,
    )

# A round heartbeats while it waits for its loads and the remote: a worker
# that dies mid-round is noticed within HEARTBEAT, and the round runs again
# (its cursors only move once what they cover is acknowledged).
ROUND_TIMEOUT = timedelta(minutes=10)
HEARTBEAT = timedelta(seconds=30)
# A round reports failures as its result; what it raises is unexpected (a
# bug, a lost database): retried a few times, then a failed round like any
# other, whose backoff the workflow shows.
ROUND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=3,
)
# A failed wait only means the next round comes sooner.
WAIT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=2)
# Heartbeats reach the server at most every 80% of this: a wait cancelled by
# a wake learns it (and lets its HTTP stream go) within that.
WAIT_HEARTBEAT = timedelta(seconds=10)
# The wait's own timeout beyond its poll interval.
WAIT_MARGIN = timedelta(seconds=60)
ERROR_SHOWN = 200  # characters of the last error in the current details

WORKFLOW_ID_PREFIX = "sync-"


def channel_workflow_id(name: str) -> str:
    return f"{WORKFLOW_ID_PREFIX}{name}"


@workflow.defn(name="SyncWorkflow")
class SyncWorkflow:
    def __init__(self) -> None:
        self._status = ChannelStatus(name="")
        self._woken = False
        self._details = ""

    @workflow.signal
    def wake(self) -> None:
        """Something may have changed: end the wait for changes now. A wake
        during a round is kept: that round may have read before the change,
        so the next follows without waiting."""
        self._woken = True

    @workflow.query
    def status(self) -> ChannelStatus:
        return self._status

    @workflow.run
    async def run(self, inp: SyncInput) -> None:
        status = self._status = (
            inp.status.model_copy() if inp.status is not None else ChannelStatus(name=inp.name)
        )
        status.rounds = max(status.rounds, inp.rounds)
        rounds = 0
        while True:
            # The round reads both sides after every wake so far.
            self._woken = False
            status.phase = ChannelPhase.SYNCING
            self._show_details()
            result = await self._round(inp.name)
            rounds += 1
            self._record(result, inp)
            if result.removed:
                self._show_details()
                return
            if not result.ok:
                status.phase = ChannelPhase.BACKING_OFF
                self._show_details()
                await self._back_off(status.backoff_s)
            elif not result.moved:
                status.phase = ChannelPhase.WAITING
                self._show_details()
                await self._wait(inp)
            if rounds >= inp.max_rounds or workflow.info().is_continue_as_new_suggested():
                break
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(inp.model_copy(update={"rounds": status.rounds, "status": status}))

    async def _round(self, name: str) -> RoundResult:
        try:
            return await workflow.execute_activity_method(
                SyncActivities.sync_round,
                SyncRoundInput(name=name),
                start_to_close_timeout=ROUND_TIMEOUT,
                heartbeat_timeout=HEARTBEAT,
                retry_policy=ROUND_RETRY,
                summary=f"sync round of channel {name}",
            )
        except ActivityError as err:
            return RoundResult(ok=False, error=_reason(err))

    def _record(self, result: RoundResult, inp: SyncInput) -> None:
        status = self._status
        status.rounds += 1
        status.last_round_at = workflow.now()
        status.pulled += result.pulled
        status.pushed += result.pushed
        if result.ok:
            status.state = ChannelState.SUCCEEDED
            status.attempts = 0
            status.backoff_s = 0.0
            status.last_error = None
        else:
            status.state = ChannelState.FAILED
            status.attempts += 1
            status.last_error = result.error or "the round failed"
            status.backoff_s = backoff_after(
                status.attempts, inp.initial_backoff_s, inp.max_backoff_s
            )

    async def _back_off(self, seconds: float) -> None:
        """Until the backoff passed, or a wake signal (an operator who fixed
        the remote need not wait out a minute)."""
        if self._woken:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await workflow.wait_condition(lambda: self._woken, timeout=timedelta(seconds=seconds))

    async def _wait(self, inp: SyncInput) -> None:
        """Until the wait activity sees a change or times out, or a wake
        signal comes (the activity is then cancelled: it heartbeats)."""
        if self._woken:
            return
        handle = workflow.start_activity_method(
            SyncActivities.wait_for_changes,
            WaitInput(name=inp.name, timeout_s=inp.poll_interval_s),
            start_to_close_timeout=timedelta(seconds=inp.poll_interval_s) + WAIT_MARGIN,
            heartbeat_timeout=WAIT_HEARTBEAT,
            retry_policy=WAIT_RETRY,
            cancellation_type=workflow.ActivityCancellationType.TRY_CANCEL,
            summary=f"wait for changes on channel {inp.name}",
        )
        await workflow.wait_condition(lambda: handle.done() or self._woken)
        if not handle.done():
            handle.cancel()
        try:
            await handle
        except ActivityError:
            pass  # cancelled, or failed: the next round runs either way

    def _show_details(self) -> None:
        """The UI's line for the channel, set only when it changed."""
        details = render_details(self._status)
        if details != self._details:
            self._details = details
            workflow.set_current_details(details)


def render_details(status: ChannelStatus) -> str:
    parts = [f"**sync `{status.name}`**", status.state.value]
    if status.state == ChannelState.FAILED:
        parts[-1] += f" {status.attempts}× in a row"
    if status.phase == ChannelPhase.BACKING_OFF:
        parts.append(f"next round in {status.backoff_s:g} s")
    elif status.phase == ChannelPhase.WAITING:
        parts.append("waiting for changes")
    else:
        parts.append("syncing")
    parts.append(f"{status.pulled} pulled, {status.pushed} pushed in {status.rounds} rounds")
    if status.last_round_at is not None:
        parts.append(f"last round {status.last_round_at:%Y-%m-%d %H:%M:%S} UTC")
    if status.last_error:
        error = " ".join(status.last_error.split())
        if len(error) > ERROR_SHOWN:
            error = error[: ERROR_SHOWN - 1] + "…"
        parts.append(f"last error: {error}")
    return " · ".join(parts)


def _reason(err: ActivityError) -> str:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type or 'ApplicationError'}: {cause.message}"
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    return str(err)


async def start_channel(
    client: Client, name: str, task_queue: str
) -> WorkflowHandle[SyncWorkflow, None]:
    """Starts the channel's workflow, or wakes the one already running
    (signal-with-start), so starting a channel twice is harmless."""
    return await client.start_workflow(
        SyncWorkflow.run,
        SyncInput(name=name),
        id=channel_workflow_id(name),
        task_queue=task_queue,
        start_signal="wake",
    )
