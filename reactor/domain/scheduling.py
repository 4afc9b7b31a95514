"""The batch DAG scheduler. Pure and deterministic: it runs inside the
batch workflow, so no I/O, clocks or randomness here.

A job may start when its `depends_on` jobs succeeded and the previous job on
its lane (same document and branch) finished either way. To amortize
Temporal's per-activity cost, a chunk also takes jobs whose predecessors are
in the same chunk: the activity runs that sub-DAG itself, in order.

A job a blocked read model holds back ends WRITE_READY (its write is durable,
its indexing waits for the read model to be unblocked): its dependents and
its lane go on, since what they depend on is written.
"""

from __future__ import annotations

from reactor.domain.batch import PlanEntry
from reactor.domain.graph import JobGraph, dependency_failed
from reactor.domain.jobs import JobError, JobOutcome, JobStatus, OperationSpan


class JobState:
    __slots__ = ("status", "error", "coordinates")

    def __init__(self) -> None:
        self.status = JobStatus.PENDING
        self.error: JobError | None = None
        self.coordinates: list[OperationSpan] = []


class Scheduler:
    def __init__(self, entries: list[PlanEntry]):
        self.entries = entries
        self.states = [JobState() for _ in entries]
        self.graph = JobGraph.of(entries)
        self.order = self.graph.order
        self._pending = len(entries)
        self.failed = 0
        # Kept as jobs move, so that the workflow's current details cost
        # nothing per job: counts by status, failed and held jobs in order.
        self.counts = {s: 0 for s in JobStatus}
        self.counts[JobStatus.PENDING] = len(entries)
        self.failed_order: list[int] = []
        self.held_order: list[int] = []

    @property
    def finished(self) -> bool:
        return self._pending == 0

    def ended(self, index: int) -> bool:
        """FAILED, READ_READY, or WRITE_READY held by a blocked read model (the
        scheduler marks WRITE_READY only then)."""
        return self.states[index].status in _ENDED

    def next_chunk(self, max_jobs: int) -> list[int]:
        """Marks and returns up to `max_jobs` startable jobs (topological order)."""
        chunk: list[int] = []
        taken: set[int] = set()
        for i in self.order:
            if len(chunk) >= max_jobs:
                break
            if self.states[i].status is not JobStatus.PENDING:
                continue
            e = self.entries[i]
            if all(d in taken or self.states[d].status in _WRITTEN for d in e.deps) and (
                e.after is None or e.after in taken or self.ended(e.after)
            ):
                chunk.append(i)
                taken.add(i)
        for i in chunk:
            self._move(i, JobStatus.RUNNING)
        return chunk

    def complete(self, outcome: JobOutcome) -> None:
        state = self.states[outcome.index]
        if self.ended(outcome.index):
            return
        if outcome.ok:
            state.coordinates = outcome.coordinates
            self._pending -= 1
            if outcome.held is not None:
                state.error = outcome.held
                self._move(outcome.index, JobStatus.WRITE_READY)
                self.held_order.append(outcome.index)
            else:
                self._move(outcome.index, JobStatus.READ_READY)
        else:
            self._fail(outcome.index, outcome.error or JobError(type="Error", message="failed"))

    def _move(self, index: int, status: JobStatus) -> None:
        state = self.states[index]
        self.counts[state.status] -= 1
        self.counts[status] += 1
        state.status = status

    def _fail(self, index: int, error: JobError) -> None:
        """Fails `index` and, at once, the pending jobs that depend on it:
        nothing they wait for will be written."""
        cascade = self.graph.cascade(index, self._pending_job)
        self._end_failed(index, error)
        for job, dependency in cascade:
            self._end_failed(job, dependency_failed(self.entries[dependency].key))

    def _pending_job(self, index: int) -> bool:
        return self.states[index].status is JobStatus.PENDING

    def _end_failed(self, index: int, error: JobError) -> None:
        self._move(index, JobStatus.FAILED)
        self.states[index].error = error
        self._pending -= 1
        self.failed += 1
        self.failed_order.append(index)


_WRITTEN = frozenset((JobStatus.READ_READY, JobStatus.WRITE_READY))
_ENDED = frozenset((JobStatus.READ_READY, JobStatus.WRITE_READY, JobStatus.FAILED))
