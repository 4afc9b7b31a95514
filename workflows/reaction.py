"""ReactionWorkflow: one long-running workflow per reaction. It drains in a
local activity (the low-latency path: it runs on the worker that took the
wake-up), fans out competing drains to any worker when there is a backlog,
then sleeps until a wake signal or the poll interval. Histories stay short
with continue-as-new."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.reactions import DrainInput, DrainOutput

DRAIN_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=100),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
)


class ReactionInput(BaseModel):
    name: str
    poll_interval_s: float = 1.0
    fanout: int = 2
    drain_budget_s: float = 5.0
    max_iterations: int = 500


class ReactionStatus(BaseModel):
    name: str
    iterations: int
    wakes: int
    handled: int
    blocked: list[str]


@workflow.defn(name="ReactionWorkflow")
class ReactionWorkflow:
    def __init__(self) -> None:
        self._name = ""
        self._wakes = 0
        self._iterations = 0
        self._handled = 0
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
        )

    @workflow.run
    async def run(self, inp: ReactionInput) -> None:
        self._name = inp.name
        drain = DrainInput(name=inp.name, budget_seconds=inp.drain_budget_s)
        while self._iterations < inp.max_iterations:
            self._iterations += 1
            seen = self._wakes  # a wake arriving during the drain is kept
            out = await workflow.execute_local_activity(
                "drain_reaction",
                drain,
                result_type=DrainOutput,
                start_to_close_timeout=timedelta(seconds=inp.drain_budget_s + 55),
                retry_policy=DRAIN_RETRY,
                summary=f"drain reaction {inp.name}",
            )
            self._record(out)
            if out.more and inp.fanout > 0:
                outs = await asyncio.gather(
                    *(
                        workflow.execute_activity(
                            "drain_reaction",
                            drain,
                            result_type=DrainOutput,
                            start_to_close_timeout=timedelta(seconds=inp.drain_budget_s + 55),
                            retry_policy=DRAIN_RETRY,
                            summary=f"drain reaction {inp.name} (competing)",
                        )
                        for _ in range(inp.fanout)
                    )
                )
                for o in outs:
                    self._record(o)
                continue
            if out.more:
                continue
            if workflow.info().is_continue_as_new_suggested():
                break
            try:
                await workflow.wait_condition(
                    lambda seen=seen: self._wakes != seen,  # type: ignore[misc]
                    timeout=timedelta(seconds=inp.poll_interval_s),
                )
            except TimeoutError:
                pass  # the poll: a lost wake-up costs latency, never correctness
        workflow.continue_as_new(inp)

    def _record(self, out: DrainOutput) -> None:
        self._handled += out.handled
        self._blocked.extend(out.blocked)
