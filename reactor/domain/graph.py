"""The dependency graph of a batch's jobs, and the rules that walk it.

Validation rejects cycles with it, the batch workflow's Scheduler orders
jobs and propagates failures with it, and the apply activity runs a chunk's
jobs in the order its ReadySet allows. Pure and deterministic: the workflow
imports it, so no I/O, clocks, randomness or event loop here.

A job waits for two kinds of predecessors: its `depends_on` jobs, whose
failure fails it too, and the previous job on its lane (same document and
branch), which only orders it: a lane goes on after a failure.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from reactor.domain.jobs import JobError


class Node(Protocol):
    """A job as the graph sees it: plan entries and planned jobs both are."""

    @property
    def key(self) -> str: ...

    @property
    def deps(self) -> Sequence[int]: ...

    @property
    def after(self) -> int | None: ...


class IndexedNode(Node, Protocol):
    @property
    def index(self) -> int: ...


class CycleError(ValueError):
    """The jobs wait for each other in a circle. `cycle` names them in the
    order they wait, the first named again at the end."""

    def __init__(self, cycle: list[str]):
        self.cycle = cycle
        self.job = cycle[0]
        self.reason = (
            f"dependency cycle: {' -> '.join(repr(k) for k in cycle)} "
            "(jobs on the same document also run in submission order)"
        )
        super().__init__(self.reason)


def dependency_failed(key: str) -> JobError:
    """The error of a job that never ran because `key`, a job it depends on,
    failed."""
    return JobError(type="DependencyFailed", message=f"dependency {key!r} failed", dependency=key)


class JobGraph:
    """Jobs 0..n-1 and their edges. Raises CycleError when they have a cycle."""

    __slots__ = ("keys", "deps", "preds", "dependents", "successors", "order")

    def __init__(
        self, keys: Sequence[str], deps: Sequence[Sequence[int]], after: Sequence[int | None]
    ):
        n = len(keys)
        self.keys = keys
        self.deps = deps
        # Both kinds of edge, each once: they decide when a job may start.
        self.preds: list[list[int]] = []
        for i in range(n):
            preds = list(dict.fromkeys(deps[i]))
            lane = after[i]
            if lane is not None and lane not in preds:
                preds.append(lane)
            self.preds.append(preds)
        self.successors: list[list[int]] = [[] for _ in range(n)]
        for i, preds in enumerate(self.preds):
            for p in preds:
                self.successors[p].append(i)
        # Only depends_on edges: the ones a failure travels along.
        self.dependents: list[list[int]] = [[] for _ in range(n)]
        for i, ds in enumerate(deps):
            for d in ds:
                self.dependents[d].append(i)
        self.order = self._topological_order()

    @classmethod
    def of(cls, jobs: Sequence[Node]) -> JobGraph:
        """The graph of a whole plan: job i is jobs[i]."""
        return cls([j.key for j in jobs], [j.deps for j in jobs], [j.after for j in jobs])

    @classmethod
    def within(cls, jobs: Sequence[IndexedNode]) -> JobGraph:
        """The graph of some jobs of a plan (a chunk): node p is jobs[p], and
        edges to jobs outside them are left out (the Scheduler hands out a
        chunk only once its dependencies outside it were written and its
        lane predecessors outside it ended)."""
        at = {j.index: p for p, j in enumerate(jobs)}
        return cls(
            [j.key for j in jobs],
            [[at[d] for d in j.deps if d in at] for j in jobs],
            [at.get(j.after) if j.after is not None else None for j in jobs],
        )

    def __len__(self) -> int:
        return len(self.keys)

    def cascade(self, failed: int, pending: Callable[[int], bool]) -> list[tuple[int, int]]:
        """The jobs the failure of `failed` fails at once: its `pending`
        dependents, theirs, and so on (never a lane successor). Each comes
        with the dependency through which the failure reached it, the one
        its error names. `pending` is asked about the jobs as they were
        before `failed` failed."""
        failing: list[tuple[int, int]] = []
        seen = {failed}
        stack = [(d, failed) for d in self.dependents[failed] if pending(d)]
        while stack:
            job, cause = stack.pop()
            if job in seen:
                continue
            seen.add(job)
            failing.append((job, cause))
            stack.extend((d, job) for d in self.dependents[job] if d not in seen and pending(d))
        return failing

    def _topological_order(self) -> list[int]:
        """Kahn's algorithm, the lowest index first among the jobs free to go:
        the same graph always gives the same order."""
        waiting = [len(p) for p in self.preds]
        free = [i for i, n in enumerate(waiting) if n == 0]
        heapq.heapify(free)
        order: list[int] = []
        while free:
            i = heapq.heappop(free)
            order.append(i)
            for s in self.successors[i]:
                waiting[s] -= 1
                if waiting[s] == 0:
                    heapq.heappush(free, s)
        if len(order) != len(self.keys):
            raise CycleError(self._find_cycle())
        return order

    def _find_cycle(self) -> list[str]:
        """A depth-first search from the lowest index, along successors: the
        first edge back to a job on the path closes the cycle it names."""
        color = [0] * len(self.keys)  # 0 new, 1 on the path, 2 done
        for start in range(len(self.keys)):
            if color[start]:
                continue
            stack: list[tuple[int, int]] = [(start, 0)]
            path = [start]
            color[start] = 1
            while stack:
                node, pos = stack[-1]
                if pos < len(self.successors[node]):
                    stack[-1] = (node, pos + 1)
                    nxt = self.successors[node][pos]
                    if color[nxt] == 1:
                        cycle = path[path.index(nxt) :] + [nxt]
                        return [self.keys[c] for c in reversed(cycle)]
                    if color[nxt] == 0:
                        color[nxt] = 1
                        stack.append((nxt, 0))
                        path.append(nxt)
                else:
                    color[node] = 2
                    stack.pop()
                    path.pop()
        raise AssertionError("Kahn's algorithm left jobs out, yet no cycle was found")


@dataclass(frozen=True, slots=True)
class Step:
    """What to do with a job whose predecessors all ended: run it, or (when
    `failed_dependency` is set) fail it naming that dependency."""

    job: int
    failed_dependency: int | None = None


_OPEN, _RUNNING, _OK, _FAILED, _UNDECIDED = range(5)


class ReadySet:
    """Which jobs may start, as the jobs before them end; driven by whoever
    runs them (the apply activity runs a chunk with it).

    A job waits until every predecessor ended. Then, if one of them ended
    undecided (it raised), the job never starts, nor anything after it: the
    attempt fails and its retry runs them in order. Else if a dependency
    failed, the job fails without running, naming the first failed one in
    its `depends_on` order. Else it starts. Jobs that ended without the
    ReadySet having handed them out (given up before they started) count as
    ended all the same.
    """

    def __init__(self, graph: JobGraph):
        self._graph = graph
        self._state = [_OPEN] * len(graph)
        self._waiting = [len(p) for p in graph.preds]
        self._free = [i for i, n in enumerate(self._waiting) if n == 0]
        self._open = len(graph)
        self.stranded: list[int] = []  # never started: a predecessor raised

    @property
    def finished(self) -> bool:
        return self._open == 0

    def end(self, job: int, ok: bool | None) -> None:
        """`job` ended: succeeded, failed, or (None) raised without a decision."""
        if self._state[job] not in (_OPEN, _RUNNING):
            raise ValueError(f"job {self._graph.keys[job]!r} already ended")
        self._settle(job, _UNDECIDED if ok is None else _OK if ok else _FAILED)

    def take(self) -> list[Step]:
        """The jobs that can be decided now, lowest index first; the ones it
        returns to run are running from then on. A job failed here ends here,
        so its own dependents may be among the steps."""
        steps: list[Step] = []
        preds, deps, state = self._graph.preds, self._graph.deps, self._state
        while self._free:
            job = heapq.heappop(self._free)
            if state[job] != _OPEN:
                continue  # ended before it was free: given up
            if any(state[p] == _UNDECIDED for p in preds[job]):
                self.stranded.append(job)
                self._settle(job, _UNDECIDED)
                continue
            failed = next((d for d in deps[job] if state[d] == _FAILED), None)
            if failed is not None:
                steps.append(Step(job, failed))
                self._settle(job, _FAILED)
                continue
            state[job] = _RUNNING
            steps.append(Step(job))
        return steps

    def _settle(self, job: int, state: int) -> None:
        self._state[job] = state
        self._open -= 1
        for s in self._graph.successors[job]:
            self._waiting[s] -= 1
            if self._waiting[s] == 0:
                heapq.heappush(self._free, s)
