"""BatchWorkflow: one execute_batch call. It holds the DAG, hands ready
chunks of jobs to the apply activity, and answers status queries, also after
it has closed."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    # Models live outside this module: the sandbox re-runs workflow modules
    # per instance, and rebuilding pydantic classes each time is costly.
    from activities.batch import ApplyJobsInput, LoadPlanInput
    from reactor.domain.batch import PlanEntry, entry_of
    from reactor.domain.jobs import JobOutcome, JobStatus
    from reactor.domain.scheduling import Scheduler
    from reactor.domain.workflow_io import (
        PLAN_PAGE,
        RESULT_JOBS_LIMIT,
        RESULT_VIEWS_BYTES,
        BatchInput,
        BatchSummary,
        JobView,
        views_json_size,
    )
    from reactor.observability import search_attributes

APPLY_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
)


@workflow.defn(name="BatchWorkflow")
class BatchWorkflow:
    def __init__(self) -> None:
        self._batch_id = ""
        self._total = 0
        self._sched: Scheduler | None = None
        self._changed = False

    @workflow.run
    async def run(self, inp: BatchInput) -> BatchSummary:
        self._batch_id = inp.batch_id
        self._total = inp.job_count
        inline = {j.index: j for j in inp.jobs} if inp.jobs is not None else None
        entries = inp.plan
        if entries is None and inp.jobs is not None:
            entries = [entry_of(j) for j in inp.jobs]
        if entries is None:
            entries = []
            while len(entries) < inp.job_count:
                page_of = LoadPlanInput(batch_id=inp.batch_id, offset=len(entries), limit=PLAN_PAGE)
                # A local activity: one database read, no server round trip.
                # Histories recorded before the change replay the old command.
                execute = (
                    workflow.execute_local_activity
                    if workflow.patched("load-plan-local")
                    else workflow.execute_activity
                )
                page = await execute(
                    "load_plan",
                    page_of,
                    result_type=list[PlanEntry],
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=APPLY_RETRY,
                )
                if not page:
                    raise ApplicationError(
                        f"batch {inp.batch_id}: plan has {len(entries)} of {inp.job_count} jobs",
                        non_retryable=True,
                    )
                entries.extend(page)
        sched = self._sched = Scheduler(entries)
        cfg = inp.config
        in_flight = 0

        async def run_chunk(indices: list[int]) -> None:
            nonlocal in_flight
            arg = ApplyJobsInput(
                batch_id=inp.batch_id,
                indices=indices,
                jobs=[inline[i] for i in indices] if inline is not None else None,
            )
            if len(indices) <= cfg.local_activity_max_jobs:
                outcomes = await workflow.execute_local_activity(
                    "apply_jobs",
                    arg,
                    result_type=list[JobOutcome],
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=APPLY_RETRY,
                    summary=_chunk_summary(entries, indices),
                )
            else:
                outcomes = await workflow.execute_activity(
                    "apply_jobs",
                    arg,
                    result_type=list[JobOutcome],
                    start_to_close_timeout=timedelta(seconds=cfg.activity_timeout_s),
                    heartbeat_timeout=timedelta(seconds=cfg.heartbeat_timeout_s),
                    retry_policy=APPLY_RETRY,
                    summary=_chunk_summary(entries, indices),
                )
            for outcome in outcomes:
                sched.complete(outcome)
            in_flight -= 1
            self._changed = True

        tasks: list[asyncio.Task[None]] = []
        while not sched.finished:
            while in_flight < cfg.max_parallel_chunks:
                chunk = sched.next_chunk(cfg.chunk_size)
                if not chunk:
                    break
                in_flight += 1
                tasks.append(asyncio.create_task(run_chunk(chunk)))
            self._changed = False
            await workflow.wait_condition(lambda: self._changed)
        await asyncio.gather(*tasks)
        # Only batches started with our search attributes upsert them (so the
        # histories of batches started without them replay unchanged).
        if workflow.info().typed_search_attributes.get(search_attributes.STATUS) is not None:
            workflow.upsert_search_attributes(search_attributes.batch_end_updates(sched.failed))
        result = self._summary()
        if self._total <= RESULT_JOBS_LIMIT:
            views = self._views(0, self._total)
            if views_json_size(views) <= RESULT_VIEWS_BYTES:
                result.jobs = views
        return result

    @workflow.query
    def summary(self) -> BatchSummary:
        return self._summary()

    @workflow.query
    def job(self, index: int) -> JobView:
        views = self._views(index, 1)
        if not views:
            raise ValueError(f"batch {self._batch_id} has no job {index}")
        return views[0]

    @workflow.query
    def jobs(self, offset: int, limit: int) -> list[JobView]:
        return self._views(offset, limit)

    def _views(self, offset: int, limit: int) -> list[JobView]:
        if self._sched is None:
            return []
        out = []
        for i in range(max(0, offset), min(offset + limit, len(self._sched.entries))):
            e, s = self._sched.entries[i], self._sched.states[i]
            out.append(
                JobView(
                    index=i,
                    key=e.key,
                    document_id=e.document_id,
                    status=s.status,
                    error=s.error,
                    coordinates=s.coordinates,
                )
            )
        return out

    def _summary(self) -> BatchSummary:
        counts = {s.value: 0 for s in JobStatus}
        failed = 0
        finished = False
        if self._sched is not None:
            for st in self._sched.states:
                counts[st.status.value] += 1
            failed = self._sched.failed
            finished = self._sched.finished
        else:
            counts[JobStatus.PENDING.value] = self._total
        return BatchSummary(
            batch_id=self._batch_id,
            total=self._total,
            counts=counts,
            failed=failed,
            finished=finished,
        )


def _chunk_summary(entries: list[PlanEntry], indices: list[int]) -> str:
    docs = {entries[i].document_id for i in indices}
    actions = sum(entries[i].actions for i in indices)
    first = entries[indices[0]]
    if len(indices) == 1:
        return (
            f"apply {actions} action{'s' if actions != 1 else ''} to "
            f"{first.document_type or 'document'} {first.document_id[:8]}"
        )
    return f"apply {len(indices)} jobs ({actions} actions) to {len(docs)} documents"
