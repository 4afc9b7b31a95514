"""Floors for bench/latency.py: workflows that do nothing, run by an
in-process worker on their own task queue. Kept in their own module because
the workflow sandbox re-imports the module that defines a workflow."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bench_noop")
async def noop_activity() -> None:
    return None


@workflow.defn(name="BenchNoopWorkflow")
class NoopWorkflow:
    """One workflow task, then complete: Temporal's round-trip floor."""

    @workflow.run
    async def run(self) -> None:
        return None


@workflow.defn(name="BenchNoopActivityWorkflow")
class NoopActivityWorkflow:
    """The shape of a one-job batch (workflow task, activity, workflow task)
    with nothing inside."""

    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(noop_activity, start_to_close_timeout=timedelta(seconds=30))
