"""BatchWorkflow: one execute_batch call. It holds the DAG, hands ready
chunks of jobs to the apply activity, and answers status queries, also after
it has closed."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    FailureError,
)

with workflow.unsafe.imports_passed_through():
    # Models live outside this module: the sandbox re-runs workflow modules
    # per instance, and rebuilding pydantic classes each time is costly.
    from activities.batch import ApplyJobsInput, LoadPlanInput
    from reactor.domain import batch_details
    from reactor.domain.batch import PlanEntry, entry_of
    from reactor.domain.batch_details import ChunkInFlight
    from reactor.domain.jobs import JobError, JobOutcome, JobStatus
    from reactor.domain.scheduling import Scheduler
    from reactor.domain.workflow_io import (
        DETERMINISTIC_ERRORS,
        PLAN_PAGE,
        RESULT_JOBS_LIMIT,
        RESULT_VIEWS_BYTES,
        BatchConfig,
        BatchInput,
        BatchSummary,
        JobView,
        views_json_size,
    )
    from reactor.observability import search_attributes

# No error type is non-retryable here: the apply activity alone decides
# what will repeat (it bounds unknown errors to UNKNOWN_ERROR_ATTEMPTS and
# raises a non-retryable ApplicationError only for a chunk of which it
# decided nothing), so a raw exception after some jobs committed is retried
# until the activity ends those jobs itself.
APPLY_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
)

# Loading the plan has no jobs to end one by one: an error that repeats
# (stored entries that no longer parse) fails the batch at once.
PLAN_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    non_retryable_error_types=DETERMINISTIC_ERRORS,
)

# A local chunk's attempts are invisible outside the worker: after this many
# the chunk moves to a regular activity, whose attempts and last failure the
# server records (and the UI lists under pending activities).
LOCAL_ATTEMPTS = 5
LOCAL_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=LOCAL_ATTEMPTS,
)


@workflow.defn(name="BatchWorkflow")
class BatchWorkflow:
    def __init__(self) -> None:
        self._batch_id = ""
        self._total = 0
        self._sched: Scheduler | None = None
        self._changed = False
        self._in_flight: dict[int, ChunkInFlight] = {}
        self._chunks_started = 0
        self._details = ""

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
                page = await workflow.execute_local_activity(
                    "load_plan",
                    page_of,
                    result_type=list[PlanEntry],
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=PLAN_RETRY,
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
            actions = sum(entries[i].actions for i in indices)
            # A local activity has a short timeout and no heartbeat: a chunk
            # with many actions (one job may hold thousands) runs as a
            # regular activity.
            local = (
                len(indices) <= cfg.local_activity_max_jobs
                and actions <= cfg.local_activity_max_actions
            )
            chunk = ChunkInFlight(indices, actions, local, workflow.now())
            self._chunks_started += 1
            number = self._chunks_started
            self._in_flight[number] = chunk
            self._changed = True
            try:
                outcomes = await self._apply(arg, chunk, entries, cfg)
            except FailureError as err:
                error = _deterministic(err)
                if error is None:
                    raise
                # The activity raises a deterministic error only before it
                # commits any job of the chunk, so none of them is written.
                outcomes = [JobOutcome(index=i, ok=False, error=error) for i in indices]
            finally:
                del self._in_flight[number]
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
            self._show_details()
        await asyncio.gather(*tasks)
        self._show_details()
        # Only batches started with our search attributes upsert them: one
        # started without them runs on a cluster that has not registered
        # them, which would fail the upsert.
        if workflow.info().typed_search_attributes.get(search_attributes.STATUS) is not None:
            workflow.upsert_search_attributes(search_attributes.batch_end_updates(sched.failed))
        result = self._summary()
        if self._total <= RESULT_JOBS_LIMIT:
            views = self._views(0, self._total)
            if views_json_size(views) <= RESULT_VIEWS_BYTES:
                result.jobs = views
        return result

    async def _apply(
        self,
        arg: ApplyJobsInput,
        chunk: ChunkInFlight,
        entries: list[PlanEntry],
        cfg: BatchConfig,
    ) -> list[JobOutcome]:
        summary = _chunk_summary(entries, chunk.indices)
        if chunk.local:
            try:
                return await workflow.execute_local_activity(
                    "apply_jobs",
                    arg,
                    result_type=list[JobOutcome],
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=LOCAL_RETRY,
                    summary=summary,
                )
            except FailureError as err:
                # Its attempts ran out on an error that may pass (a lost
                # connection, a timeout): let the server retry it in view.
                if _deterministic(err) is not None or isinstance(_cause(err), CancelledError):
                    raise
                chunk.local = False
                chunk.local_attempts += LOCAL_ATTEMPTS
                chunk.failures.append(_reason(err))
                self._changed = True
        return await workflow.execute_activity(
            "apply_jobs",
            arg,
            result_type=list[JobOutcome],
            start_to_close_timeout=timedelta(seconds=cfg.activity_timeout_s),
            heartbeat_timeout=timedelta(seconds=cfg.heartbeat_timeout_s),
            retry_policy=APPLY_RETRY,
            summary=summary,
        )

    def _show_details(self) -> None:
        """The UI's view of the batch, set only when it changed."""
        details = batch_details.render(
            self._batch_id, self._total, self._sched, list(self._in_flight.values())
        )
        if details != self._details:
            self._details = details
            workflow.set_current_details(details)

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


def _cause(err: FailureError) -> BaseException:
    """What the activity raised: a regular activity's failure wraps it; a
    local activity's may come as it is."""
    if isinstance(err, ActivityError) and err.cause is not None:
        return err.cause
    return err


def _deterministic(err: FailureError) -> JobError | None:
    """The error every job of a failed chunk ends with, if it will repeat."""
    cause = _cause(err)
    if not isinstance(cause, ApplicationError):
        return None  # a timeout or a cancellation: not the chunk's fault
    if not cause.non_retryable:
        return None
    return JobError(type=cause.type or "ApplicationError", message=cause.message)


def _reason(err: FailureError) -> str:
    cause = _cause(err)
    if isinstance(cause, ApplicationError):
        return f"{cause.type or 'ApplicationError'}: {cause.message}"
    return f"{type(cause).__name__}: {cause}"


def _chunk_summary(entries: list[PlanEntry], indices: list[int]) -> str:
    docs = {entries[i].document_id for i in indices}
    actions = sum(entries[i].actions for i in indices)
    first = entries[indices[0]]
    if len(indices) == 1:
        return (
            f"apply {actions} action{'s' if actions != 1 else ''} to "
            f"{first.document_type or 'document'} {first.document_id[:8]} (job {first.key[:40]})"
        )
    keys = ", ".join(entries[i].key[:40] for i in indices[:3])
    more = f" and {len(indices) - 3} more" if len(indices) > 3 else ""
    documents = f"{len(docs)} document{'s' if len(docs) != 1 else ''}"
    return f"apply {len(indices)} jobs ({actions} actions) to {documents}: {keys}{more}"
