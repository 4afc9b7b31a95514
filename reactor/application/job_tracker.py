"""Follows the jobs this reactor submitted and turns their progress into
event-bus events, whichever process runs them.

JOB_PENDING is emitted on submission. A commit notification naming a job
(from any worker process) yields JOB_RUNNING then JOB_WRITE_READY; a
read-ready announcement (reactor/application/ready_notices.py) yields
JOB_READ_READY; the batch workflow's completion yields JOB_READ_READY (if
not yet emitted) or JOB_FAILED. A job whose
commit notification was lost still gets RUNNING and WRITE_READY, just before
READ_READY, so handlers always see the full sequence, in order. Nothing is
followed (no RPC is opened) unless a handler subscribed to job events."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from temporalio.client import WorkflowHandle

from reactor.application.events import STATUS_EVENT, EventBus, JobEvent, ReactorEventTypes
from reactor.domain.jobs import JobInfo, JobStatus
from reactor.storage.operation_store import OperationStore

log = logging.getLogger("reactor.jobs")

FOLLOWED = (
    ReactorEventTypes.JOB_RUNNING,
    ReactorEventTypes.JOB_WRITE_READY,
    ReactorEventTypes.JOB_READ_READY,
    ReactorEventTypes.JOB_FAILED,
)


class JobTracker:
    def __init__(self, bus: EventBus, operations: OperationStore):
        self.bus = bus
        self.operations = operations
        self._jobs: dict[str, JobInfo] = {}
        self._emitted: dict[str, JobStatus] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock = asyncio.Lock()

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

    def on_commit(self, payload: dict[str, Any]) -> None:
        """NOTIFY handler: a worker committed a job, or announced it read-ready."""
        job_id = payload.get("job_id")
        if isinstance(job_id, str) and job_id in self._jobs:
            ready = payload.get("read_ready") is True
            task = asyncio.create_task(
                self._written(
                    self._jobs[job_id], JobStatus.READ_READY if ready else JobStatus.WRITE_READY
                )
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _written(self, job: JobInfo, status: JobStatus) -> None:
        async with self._lock:
            await self._advance(job, status)

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
        order = [JobStatus.RUNNING, JobStatus.WRITE_READY, JobStatus.READ_READY]
        done = self._emitted.get(job.id, JobStatus.PENDING)
        start = order.index(done) + 1 if done in order else 0
        for status in order[start : order.index(target) + 1]:
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
