"""ReactionWorkflow: one long-running workflow per reaction.

Its loop runs the drain as a local activity that also *waits* for new work
for a few seconds inside the worker process, woken at once by NOTIFY or by
the worker's own commits, and polling the database meanwhile (workflow timers
are too coarse for sub-second polling, and every wait would cost history).
When a drain reports a backlog, competing drains fan out to any worker as
regular activities. `wake` signals (signal-with-start from the router) start
the workflow or nudge it when no drain is waiting. Histories stay short with
continue-as-new.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.reactions import DrainInput, DrainOutput
    from reactor.domain.workflow_io import DETERMINISTIC_ERRORS, ReactionInput, ReactionStatus

# The drain keeps this workflow's task open while it waits for work (local
# activities run inside the task), so a query (the `status` one, the UI's
# stack trace) is answered only when core heartbeats the task, at 80% of its
# timeout: up to 8 s with Temporal's default of 10 s, up to 1.6 s with this.
# Each heartbeat costs three history events: about two a second per waiting
# reaction, and continue-as-new keeps histories short.
TASK_TIMEOUT = timedelta(seconds=2)

# A handler's failures never reach it (the drain keeps them per stream and
# blocks the stream); what does is a lost database, retried, or a bug in the
# drain itself, which fails the workflow where the UI shows it (the next
# commit's wake starts it again).
DRAIN_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=100),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    non_retryable_error_types=DETERMINISTIC_ERRORS,
)


@workflow.defn(name="ReactionWorkflow")
class ReactionWorkflow:
    def __init__(self) -> None:
        self._name = ""
        self._wakes = 0
        self._iterations = 0
        self._handled = 0
        self._woken = 0
        self._blocked: list[str] = []

    @workflow.signal
    def wake(self) -> None:
        self._wakes += 1

    @workflow.query
    def status(self) -> ReactionStatus:
        return ReactionStatus(
            name=self._name,
            iterations=self._iterations,
            wakes=self._wakes,
            handled=self._handled,
            blocked=self._blocked[-20:],
            woken=self._woken,
        )

    @workflow.run
    async def run(self, inp: ReactionInput) -> None:
        self._name = inp.name
        waiting = DrainInput(
            name=inp.name,
            budget_seconds=inp.drain_budget_s,
            idle_seconds=inp.idle_s,
            poll_seconds=inp.poll_interval_s,
        )
        competing = DrainInput(name=inp.name, budget_seconds=inp.drain_budget_s)
        timeout = timedelta(seconds=inp.drain_budget_s + inp.idle_s + 55)
        while self._iterations < inp.max_iterations:
            self._iterations += 1
            out = await workflow.execute_local_activity(
                "drain_reaction",
                waiting,
                result_type=DrainOutput,
                start_to_close_timeout=timeout,
                retry_policy=DRAIN_RETRY,
                summary=f"drain reaction {inp.name}",
            )
            self._record(out)
            if out.stopping:
                # That worker is shutting down: leave it, wait on a timer (any
                # worker fires it) or a wake signal.
                seen = self._wakes
                try:
                    await workflow.wait_condition(
                        lambda seen=seen: self._wakes != seen,  # type: ignore[misc]
                        timeout=timedelta(seconds=1),
                    )
                except TimeoutError:
                    pass
                continue
            if out.more and inp.fanout > 0:
                outs = await asyncio.gather(
                    *(
                        workflow.execute_activity(
                            "drain_reaction",
                            competing,
                            result_type=DrainOutput,
                            start_to_close_timeout=timeout,
                            retry_policy=DRAIN_RETRY,
                            summary=f"drain reaction {inp.name} (competing)",
                        )
                        for _ in range(inp.fanout)
                    )
                )
                for o in outs:
                    self._record(o)
            if workflow.info().is_continue_as_new_suggested():
                break
        workflow.continue_as_new(inp, task_timeout=TASK_TIMEOUT)

    def _record(self, out: DrainOutput) -> None:
        self._handled += out.handled
        self._woken += out.woken
        self._blocked.extend(out.blocked)
