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

import heapq

from reactor.domain.batch import PlanEntry
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
        self.dependents: list[list[int]] = [[] for _ in entries]
        for i, e in enumerate(entries):
            for d in e.deps:
                self.dependents[d].append(i)
        self.order = _topological_order(entries)
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
        stack = [(index, error)]
        while stack:
            i, err = stack.pop()
            st = self.states[i]
            if self.ended(i):
                continue
            self._move(i, JobStatus.FAILED)
            st.error = err
            self._pending -= 1
            self.failed += 1
            self.failed_order.append(i)
            key = self.entries[i].key
            for dep in self.dependents[i]:
                if self.states[dep].status is JobStatus.PENDING:
                    stack.append((dep, dependency_failed(key)))


_WRITTEN = frozenset((JobStatus.READ_READY, JobStatus.WRITE_READY))
_ENDED = frozenset((JobStatus.READ_READY, JobStatus.WRITE_READY, JobStatus.FAILED))


def dependency_failed(key: str) -> JobError:
    return JobError(type="DependencyFailed", message=f"dependency {key!r} failed", dependency=key)


def _topological_order(entries: list[PlanEntry]) -> list[int]:
    """Kahn's algorithm over depends_on and lane edges, lowest index first."""
    indegree = [0] * len(entries)
    succ: list[list[int]] = [[] for _ in entries]
    for i, e in enumerate(entries):
        preds = set(e.deps)
        if e.after is not None:
            preds.add(e.after)
        indegree[i] = len(preds)
        for p in preds:
            succ[p].append(i)
    heap = [i for i, n in enumerate(indegree) if n == 0]
    heapq.heapify(heap)
    order: list[int] = []
    while heap:
        i = heapq.heappop(heap)
        order.append(i)
        for s in succ[i]:
            indegree[s] -= 1
            if indegree[s] == 0:
                heapq.heappush(heap, s)
    if len(order) != len(entries):
        raise ValueError("the batch plan has a cycle")
    return order
