"""Follows the jobs this reactor submitted and turns their progress into
event-bus events, whichever process runs them.

JOB_PENDING is emitted on submission. A commit notification naming a job
(from any worker process) yields JOB_RUNNING then JOB_WRITE_READY; a
read-ready announcement (reactor/application/ready_notices.py) yields
JOB_READ_READY; the batch workflow's completion yields JOB_READ_READY (if
not yet emitted) or JOB_FAILED. A job whose
commit notification was lost still gets RUNNING and WRITE_READY, just before
READ_READY, so handlers always see the full sequence, in order. Nothing is
followed (no RPC is opened) unless a handler subscribed to job events.

A notification is a NOTIFY, which any database role may send with any
payload, so it is only the moment to ask the job ledger
(reactor/application/ready_check.py), one primary-key read per announcement
of a followed job that would move it forward: a commit yields WRITE_READY
only once the ledger says the job was applied, a read-ready announcement
yields READ_READY only once the ledger (and the read models) confirm it.
Announcements the ledger does not confirm (a job that failed or has not run,
a forged payload) yield nothing: the workflow's completion answers. Only the
payload's job id and read-ready flag are read (the events carry the
operations the store holds, never the payload's); a payload whose job id or
flag is not of their type is dropped with a debug log. Notifications naming
jobs this reactor does not follow cost two type checks and a dictionary
lookup."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from temporalio.client import WorkflowHandle

from reactor.application.events import STATUS_EVENT, EventBus, JobEvent, ReactorEventTypes
from reactor.domain.jobs import JobInfo, JobStatus, OperationSpan
from reactor.storage.operation_store import OperationStore

log = logging.getLogger("reactor.jobs")

FOLLOWED = (
    ReactorEventTypes.JOB_RUNNING,
    ReactorEventTypes.JOB_WRITE_READY,
    ReactorEventTypes.JOB_READ_READY,
    ReactorEventTypes.JOB_FAILED,
)
# The order announcements move a job through; FAILED comes from the workflow only.
PROGRESS = (JobStatus.RUNNING, JobStatus.WRITE_READY, JobStatus.READ_READY)


class Ledger(Protocol):
    """What the job ledger says of a job (reactor.application.ready_check.LedgerCheck):
    its spans when it reached the state, None when it did not."""

    async def applied(self, job_id: str) -> list[OperationSpan] | None: ...

    async def read_ready(self, job_id: str) -> list[OperationSpan] | None: ...


class Dropped(ValueError):
    """A payload whose job id or read-ready flag is not of a commit's shape."""


class JobTracker:
    def __init__(self, bus: EventBus, operations: OperationStore, ledger: Ledger):
        self.bus = bus
        self.operations = operations
        self.ledger = ledger
        self._jobs: dict[str, JobInfo] = {}
        self._emitted: dict[str, JobStatus] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock = asyncio.Lock()
        self.dropped = 0  # malformed payloads
        self.refuted = 0  # announcements of followed jobs the ledger did not confirm

    def following(self) -> bool:
        return any(self.bus.has_subscribers(t) for t in FOLLOWED)

    @property
    def tracked(self) -> int:
        """Jobs this tracker holds state for: those of followed batches still open."""
        return len(self._jobs.keys() | self._emitted.keys())

    async def submitted(
        self, jobs: list[JobInfo], handle: WorkflowHandle[Any, Any], fetch: Any
    ) -> None:
        """`fetch()` returns the batch's final JobInfos once it closed.
        Only followed jobs are remembered (until their batch closes): a
        reactor nobody follows keeps nothing per job, however many it
        submits."""
        following = self.following()
        if following:
            for job in jobs:
                self._jobs[job.id] = job
        for job in jobs:
            await self._emit(job, JobStatus.PENDING)
        if not following:
            return
        task = asyncio.create_task(self._follow(handle, fetch, [j.id for j in jobs]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def on_commit(self, payload: Any) -> None:
        """NOTIFY handler: a worker committed a job, or announced it read-ready.
        Asks the ledger before anything is emitted."""
        try:
            announced = _announcement(payload)
        except Dropped as why:
            self.dropped += 1
            log.debug("job announcement dropped: %s", why)
            return
        if announced is None:
            return
        job_id, ready = announced
        job = self._jobs.get(job_id)
        if job is None:
            return  # not followed: its workflow answers, if anyone asks
        target = JobStatus.READ_READY if ready else JobStatus.WRITE_READY
        if self._reached(job_id, target):
            return
        task = asyncio.create_task(self._confirm(job, target))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _reached(self, job_id: str, target: JobStatus) -> bool:
        done = self._emitted.get(job_id, JobStatus.PENDING)
        return done in PROGRESS and PROGRESS.index(done) >= PROGRESS.index(target)

    async def _confirm(self, job: JobInfo, target: JobStatus) -> None:
        ask = self.ledger.read_ready if target is JobStatus.READ_READY else self.ledger.applied
        try:
            spans = await ask(job.id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a shortcut; the workflow answers
            log.debug("announcement for %s not checked (%s)", job.id, exc)
            spans = None
        if spans is None:
            self.refuted += 1
            log.debug("announcement for %s not confirmed by the job ledger", job.id)
            return
        async with self._lock:
            if job.id in self._jobs:  # else its batch closed and its events are out
                await self._advance(job, target)

    async def _follow(self, handle: WorkflowHandle[Any, Any], fetch: Any, ids: list[str]) -> None:
        try:
            await handle.result()
            final: list[JobInfo] = await fetch()
            async with self._lock:
                for job in final:
                    if job.status is JobStatus.READ_READY:
                        await self._advance(job, JobStatus.READ_READY)
                    elif job.status is JobStatus.FAILED:
                        await self._emit(job, JobStatus.FAILED)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not follow batch %s", handle.id)
        finally:
            for job_id in ids:
                self._jobs.pop(job_id, None)
                self._emitted.pop(job_id, None)

    async def _advance(self, job: JobInfo, target: JobStatus) -> None:
        done = self._emitted.get(job.id, JobStatus.PENDING)
        start = PROGRESS.index(done) + 1 if done in PROGRESS else 0
        for status in PROGRESS[start : PROGRESS.index(target) + 1]:
            await self._emit(job, status)

    async def _emit(self, job: JobInfo, status: JobStatus) -> None:
        if job.id in self._jobs:
            self._emitted[job.id] = status
        event_type = STATUS_EVENT[status]
        if not self.bus.has_subscribers(event_type):
            return
        ops = []
        if status in (JobStatus.WRITE_READY, JobStatus.READ_READY):
            ops = await self.operations.get_by_job(job.id)
        await self.bus.emit(
            event_type,
            JobEvent(
                job_id=job.id,
                batch_id=job.batch_id,
                key=job.key,
                document_id=job.document_id,
                status=status,
                error=job.error,
                operations=ops,
            ),
        )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _announcement(payload: Any) -> tuple[str, bool] | None:
    """The job id a commit notification names and whether it says the job
    is read-ready; None for a notification that names no job. Raises Dropped
    for a payload of another shape."""
    if type(payload) is not dict:
        raise Dropped(f"payload is {type(payload).__name__}, not an object")
    job_id = payload.get("job_id")
    if job_id is None:
        return None
    if type(job_id) is not str:
        raise Dropped(f"job_id is {type(job_id).__name__}, not a string")
    ready = payload.get("read_ready", False)
    if type(ready) is not bool:
        raise Dropped(f"{job_id[:80]}: read_ready is {type(ready).__name__}, not a boolean")
    return job_id, ready
