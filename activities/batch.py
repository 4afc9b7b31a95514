"""Activities of the batch workflow."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

import pydantic
from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.chunk_progress import ChunkProgress
from reactor.application.apply import JobApplier
from reactor.application.read_models import ReadModelCoordinator, hold_back
from reactor.application.ready_notices import range_fields
from reactor.domain.batch import PlanEntry, PlannedJob
from reactor.domain.graph import JobGraph, ReadySet, dependency_failed
from reactor.domain.jobs import JobError, JobOutcome, job_id_for
from reactor.observability.outage import OUTAGE
from reactor.storage.errors import is_transient, one_line
from reactor.storage.job_ledger import JobLedger
from reactor.storage.notify import CommitNotifier
from reactor.storage.operation_store import Position

# Attempts at a chunk that keeps raising something neither a job's error nor
# an infrastructure failure (with the workflow's backoff, about a minute).
UNKNOWN_ERROR_ATTEMPTS = 10


class ApplyJobsInput(BaseModel):
    batch_id: str
    indices: list[int]
    jobs: list[PlannedJob] | None = None  # inline batches; else loaded by reference


class LoadPlanInput(BaseModel):
    batch_id: str
    offset: int
    limit: int


@dataclass
class _Attempt:
    """What one attempt at a chunk has loaded and decided so far."""

    progress: ChunkProgress
    jobs: dict[int, PlannedJob] = field(default_factory=dict)
    outcomes: dict[int, JobOutcome] = field(default_factory=dict)


class BatchActivities:
    """Bound to one applier (database pool, models, write cache) per worker."""

    def __init__(
        self,
        applier: JobApplier,
        ledger: JobLedger,
        *,
        read_models: ReadModelCoordinator | None = None,
        max_parallel: int = 8,
        ready_notifier: CommitNotifier | None = None,
    ):
        self.applier = applier
        self.ledger = ledger
        self.read_models = read_models
        self.max_parallel = max_parallel
        # Announces jobs as read-ready once the read models caught up (see
        # reactor/application/ready_notices.py); None: not announced here.
        self.ready_notifier = ready_notifier

    @activity.defn(name="apply_jobs")
    async def apply_jobs(self, inp: ApplyJobsInput) -> list[JobOutcome]:
        """Applies a chunk of jobs, each in its own transaction, respecting the
        chunk's internal DAG; independent lanes run concurrently.

        An infrastructure failure propagates as is, for Temporal to retry
        with backoff for as long as the outage lasts. Anything else that
        escapes (a deterministic job error is an outcome, not an exception)
        is a bug or an unknown condition: retried, but only
        UNKNOWN_ERROR_ATTEMPTS times. Then the chunk ends: the jobs this
        attempt decided keep their outcomes (a written job is never reported
        FAILED), the others fail with the error. Only a chunk of which
        nothing was decided fails as a whole, non-retryable: the workflow
        then fails its jobs, none of which is written."""
        attempt = _Attempt(self._heartbeats())
        try:
            return await self._apply_jobs(inp, attempt)
        except ApplicationError:
            attempt.progress.stopped()
            raise
        except Exception as exc:
            attempt.progress.stopped()
            if is_transient(exc):
                raise
            if activity.info().attempt < UNKNOWN_ERROR_ATTEMPTS:
                raise
            if not attempt.outcomes:
                raise ApplicationError(
                    _given_up(exc),
                    type=type(exc).__name__,
                    non_retryable=True,
                ) from exc
            return await self._end_chunk(inp, attempt, exc)

    async def _end_chunk(
        self, inp: ApplyJobsInput, attempt: _Attempt, exc: Exception
    ) -> list[JobOutcome]:
        """The last attempt raised after deciding some jobs: written ones end
        WRITE_READY naming the error (whether read models indexed them is
        unknown), undecided ones FAILED with it (unless the ledger already
        holds their decision)."""
        message = _given_up(exc)
        for index in inp.indices:
            if index not in attempt.outcomes:
                attempt.outcomes[index] = await self.applier.give_up(
                    inp.batch_id, attempt.jobs[index], type(exc).__name__, message
                )
        notice = JobError(
            type=type(exc).__name__,
            message=f"written; then {message}, so it may not be indexed by every read model",
        )
        for outcome in attempt.outcomes.values():
            if outcome.ok and outcome.held is None:
                outcome.held = notice
        return [attempt.outcomes[i] for i in inp.indices]

    @staticmethod
    def _heartbeats() -> ChunkProgress:
        info = activity.info()
        # Local activities cannot heartbeat (a dead worker's workflow task
        # times out instead); regular ones do, so a dead worker is noticed.
        return ChunkProgress(info.attempt, None if info.is_local else info.heartbeat_details)

    async def _give_up_stuck(
        self,
        batch_id: str,
        jobs: dict[int, PlannedJob],
        progress: ChunkProgress,
        outcomes: dict[int, JobOutcome],
    ) -> None:
        """Ends, FAILED, the jobs the previous attempts died in (timed out or
        lost their worker) once unknown errors would have ended them too."""
        if activity.info().attempt < UNKNOWN_ERROR_ATTEMPTS:
            return
        for index, attempts in sorted(progress.never_finished().items()):
            if index in jobs:
                outcomes[index] = await self.applier.give_up(
                    batch_id,
                    jobs[index],
                    "JobNeverFinished",
                    f"in progress on {attempts} attempt{'s' if attempts != 1 else ''} in a row "
                    "that timed out or lost their worker",
                )

    async def _apply_jobs(self, inp: ApplyJobsInput, attempt: _Attempt) -> list[JobOutcome]:
        since = OUTAGE.mark()  # only work begun during an outage can end it
        try:
            jobs = (
                inp.jobs
                if inp.jobs is not None
                else await self.ledger.load_jobs(inp.batch_id, inp.indices)
            )
        except pydantic.ValidationError as exc:
            # Stored rows that no longer parse parse no better on a retry.
            raise ApplicationError(
                f"batch {inp.batch_id}: stored jobs {inp.indices} cannot be read: {exc}",
                type="StoredJobsUnreadable",
                non_retryable=True,
            ) from exc
        if len(jobs) != len(inp.indices):
            # The plan is stored before the workflow starts: a retry would
            # find the same rows missing.
            raise ApplicationError(
                f"batch {inp.batch_id}: jobs {inp.indices} not all stored",
                type="JobsNotStored",
                non_retryable=True,
            )
        by_index = attempt.jobs = {j.index: j for j in jobs}
        outcomes = attempt.outcomes
        progress = attempt.progress
        await self._give_up_stuck(inp.batch_id, by_index, progress, outcomes)
        announcements: list[asyncio.Future[None]] = []
        heartbeat = asyncio.create_task(_heartbeat(progress)) if progress.heartbeats else None
        try:
            await self._run_chunk(inp.batch_id, jobs, attempt, announcements)
            # Reported done only once announced (commits are durable already).
            await asyncio.gather(*announcements)
            # READ_READY means indexed by every read model, not just written.
            written = [o.last_position for o in outcomes.values() if o.last_position]
            if self.read_models is not None and written:
                # A blocked read model holds back the jobs it has not indexed:
                # they end WRITE_READY naming it, and the batch goes on.
                blocked = await self.read_models.catch_up(Position(*max(written)))
                hold_back(outcomes.values(), blocked)
                if self.ready_notifier is not None:
                    self._announce_read_ready(inp.batch_id, by_index, outcomes)
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
        OUTAGE.succeeded(since)  # the database answered: an outage being logged is over
        return [outcomes[i] for i in inp.indices]

    async def _run_chunk(
        self,
        batch_id: str,
        jobs: list[PlannedJob],
        attempt: _Attempt,
        announcements: list[asyncio.Future[None]],
    ) -> None:
        """Runs the chunk's jobs as its graph allows (see ReadySet), at most
        `max_parallel` at a time; a job starts as soon as those before it in
        the chunk ended, so independent lanes run concurrently. Every job
        gets to its end before the attempt fails: what was decided is in the
        ledger, and nothing runs on into the retry."""
        outcomes = attempt.outcomes
        ready = ReadySet(JobGraph.within(jobs))
        for position, job in enumerate(jobs):
            if job.index in outcomes:  # given up at the start of the attempt
                ready.end(position, outcomes[job.index].ok)
        queue: deque[int] = deque()
        running: dict[asyncio.Task[None], int] = {}
        raised: dict[int, BaseException] = {}
        try:
            while True:
                for step in ready.take():
                    job = jobs[step.job]
                    if step.failed_dependency is None:
                        queue.append(step.job)
                    else:
                        failed = jobs[step.failed_dependency].key
                        outcomes[job.index] = JobOutcome(
                            index=job.index, ok=False, error=dependency_failed(failed)
                        )
                while queue and len(running) < self.max_parallel:
                    position = queue.popleft()
                    task = asyncio.create_task(
                        self._run_job(batch_id, jobs[position], attempt, announcements)
                    )
                    running[task] = position
                if not running:
                    break
                ended, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(ended, key=running.__getitem__):
                    position = running.pop(task)
                    try:
                        task.result()
                    except BaseException as exc:
                        raised[position] = exc
                        ready.end(position, None)
                    else:
                        # Decided: what follows goes on, its NOTIFY maybe still on its way.
                        ready.end(position, outcomes[jobs[position].index].ok)
        finally:
            # Cancelled (or broken) mid-chunk: no job runs on unattended.
            for task in running:
                task.cancel()
            if running:
                await asyncio.wait(running)
        if raised:
            raise raised[min(raised)]

    async def _run_job(
        self,
        batch_id: str,
        job: PlannedJob,
        attempt: _Attempt,
        announcements: list[asyncio.Future[None]],
    ) -> None:
        progress = attempt.progress
        try:
            await progress.started(job.index)
            committed = await self.applier.commit(batch_id, job)
        except Exception as exc:
            if is_transient(exc) or activity.info().attempt < UNKNOWN_ERROR_ATTEMPTS:
                raise
            # This job, not its chunk, fails: the others' outcomes stand.
            attempt.outcomes[job.index] = await self.applier.give_up(
                batch_id, job, type(exc).__name__, _given_up(exc)
            )
            return
        finally:
            progress.finished(job.index)
        attempt.outcomes[job.index] = committed.outcome
        if committed.announced is not None:
            announcements.append(committed.announced)

    def _announce_read_ready(
        self, batch_id: str, jobs: dict[int, PlannedJob], outcomes: dict[int, JobOutcome]
    ) -> None:
        """A hint, sent without waiting: the workflow's answer does not wait
        for it (the NOTIFY leaves with the next event-loop tick)."""
        assert self.ready_notifier is not None
        for index, outcome in outcomes.items():
            if not outcome.ok or outcome.held is not None or len(outcome.coordinates) != 1:
                continue
            self.ready_notifier.announce(
                {
                    "job_id": job_id_for(batch_id, index),
                    "key": jobs[index].key,
                    **range_fields(outcome.coordinates[0]),
                    "read_ready": True,
                }
            )

    @activity.defn(name="load_plan")
    async def load_plan(self, inp: LoadPlanInput) -> list[PlanEntry]:
        return await self.ledger.load_entries(inp.batch_id, inp.offset, inp.limit)


def _given_up(exc: Exception) -> str:
    return f"{one_line(exc)} (raised on {activity.info().attempt} attempts)"


async def _heartbeat(progress: ChunkProgress) -> None:
    """Lets Temporal notice a dead worker within the heartbeat timeout."""
    while True:
        progress.beat()
        await asyncio.sleep(1.0)
