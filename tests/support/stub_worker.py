"""A real worker whose `apply_jobs` activity is replaced: to make a chunk
fail the way broken model code or a broken database would, while the batch
workflow, the Temporal server and the client stay real."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from temporalio import activity
from temporalio.worker import Worker

from activities.batch import ApplyJobsInput
from reactor.api.reactor import Reactor
from reactor.domain.jobs import JobOutcome
from workflows.batch import BatchWorkflow


@asynccontextmanager
async def apply_jobs_worker(
    reactor: Reactor, apply: Callable[[ApplyJobsInput], Awaitable[list[JobOutcome]]]
) -> AsyncIterator[None]:
    """Runs, on the reactor's task queue and through its client (so its data
    converter too), the batch workflow with `apply` as `apply_jobs`."""

    @activity.defn(name="apply_jobs")
    async def apply_jobs(inp: ApplyJobsInput) -> list[JobOutcome]:
        return await apply(inp)

    worker = Worker(
        reactor.client,
        task_queue=reactor.config.task_queue,
        workflows=[BatchWorkflow],
        activities=[apply_jobs],
    )
    task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        await worker.shutdown()
        await asyncio.gather(task, return_exceptions=True)
