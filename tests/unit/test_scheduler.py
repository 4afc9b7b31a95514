"""Scheduler: the batch DAG scheduler the workflow drives (pure, deterministic)."""

from __future__ import annotations

import random

import pytest

from reactor.domain.batch import PlanEntry
from reactor.domain.jobs import JobError, JobOutcome, JobStatus, OperationSpan
from reactor.domain.scheduling import Scheduler


def entry(
    key: str,
    document_id: str | None = None,
    *,
    deps: tuple[int, ...] = (),
    after: int | None = None,
) -> PlanEntry:
    return PlanEntry(
        key=key,
        document_id=document_id or f"doc-{key}",
        document_type="powerhouse/todo-list",
        deps=list(deps),
        after=after,
    )


def ok(index: int) -> JobOutcome:
    return JobOutcome(index=index, ok=True)


def fail(index: int, message: str = "boom") -> JobOutcome:
    return JobOutcome(index=index, ok=False, error=JobError(type="ReducerError", message=message))


def status(s: Scheduler, index: int) -> JobStatus:
    return s.states[index].status


def run_all(s: Scheduler, chunk_size: int) -> list[list[int]]:
    """Drives the scheduler to the end, every job succeeding; returns the chunks."""
    chunks: list[list[int]] = []
    while not s.finished:
        chunk = s.next_chunk(chunk_size)
        assert chunk, "scheduler stalled with jobs pending"
        chunks.append(chunk)
        for i in chunk:
            s.complete(ok(i))
    return chunks


# --- chunking ------------------------------------------------------------------------


def test_independent_jobs_all_come_in_the_first_chunk() -> None:
    s = Scheduler([entry(k) for k in "abcde"])
    assert s.next_chunk(10) == [0, 1, 2, 3, 4]
    assert all(status(s, i) is JobStatus.RUNNING for i in range(5))
    assert s.next_chunk(10) == []  # everything is handed out
    assert not s.finished


def test_chunk_size_limit_is_respected_and_the_rest_follow() -> None:
    s = Scheduler([entry(k) for k in "abcdefg"])
    assert s.next_chunk(3) == [0, 1, 2]
    assert [status(s, i) for i in range(3, 7)] == [JobStatus.PENDING] * 4
    # Independent jobs need not wait for the previous chunk to finish.
    assert s.next_chunk(3) == [3, 4, 5]
    assert s.next_chunk(3) == [6]
    assert s.next_chunk(3) == []


def test_dependency_chain_fits_in_one_chunk() -> None:
    s = Scheduler([entry("a"), entry("b", deps=(0,)), entry("c", deps=(1,))])
    assert s.next_chunk(10) == [0, 1, 2]


def test_dependency_chain_spreads_over_chunks_when_chunks_are_small() -> None:
    s = Scheduler([entry("a"), entry("b", deps=(0,)), entry("c", deps=(1,)), entry("d")])
    assert s.next_chunk(2) == [0, 1]
    assert s.next_chunk(2) == [3]  # c waits for b, which is running, not finished
    assert s.next_chunk(2) == []
    s.complete(ok(0))
    assert s.next_chunk(2) == []  # b still running
    s.complete(ok(1))
    assert s.next_chunk(2) == [2]


def test_chain_with_chunk_size_one_goes_one_job_at_a_time() -> None:
    s = Scheduler([entry("a"), entry("b", deps=(0,)), entry("c", deps=(1,))])
    assert s.next_chunk(1) == [0]
    assert s.next_chunk(1) == []
    s.complete(ok(0))
    assert s.next_chunk(1) == [1]
    assert s.next_chunk(1) == []
    s.complete(ok(1))
    assert s.next_chunk(1) == [2]


def test_lane_order_is_respected_without_deps() -> None:
    # Three jobs on one document (a lane), plus one elsewhere.
    s = Scheduler(
        [entry("a", "doc"), entry("b", "doc", after=0), entry("x"), entry("c", "doc", after=1)]
    )
    assert s.next_chunk(10) == [0, 1, 2, 3]  # the lane runs in one chunk, in order
    s = Scheduler(
        [entry("a", "doc"), entry("b", "doc", after=0), entry("x"), entry("c", "doc", after=1)]
    )
    assert s.next_chunk(1) == [0]
    assert s.next_chunk(1) == [2]
    assert s.next_chunk(1) == []
    s.complete(ok(0))
    assert s.next_chunk(1) == [1]
    s.complete(ok(1))
    assert s.next_chunk(1) == [3]


def test_job_depending_on_a_later_job_is_scheduled_after_it() -> None:
    entries = [entry("a", deps=(2,)), entry("b", deps=(0,)), entry("c")]
    s = Scheduler(entries)
    assert s.order == [2, 0, 1]
    assert s.next_chunk(10) == [2, 0, 1]
    s = Scheduler(entries)
    assert s.next_chunk(1) == [2]
    assert s.next_chunk(1) == []
    s.complete(ok(2))
    assert s.next_chunk(1) == [0]
    s.complete(ok(0))
    assert s.next_chunk(1) == [1]


def test_cyclic_plan_is_refused() -> None:
    with pytest.raises(ValueError, match="cycle"):
        Scheduler([entry("a", deps=(1,)), entry("b", deps=(0,))])
    with pytest.raises(ValueError, match="cycle"):
        Scheduler([entry("a", "doc", deps=(1,)), entry("b", "doc", after=0)])


def dag(seed: int, size: int) -> list[PlanEntry]:
    """A random acyclic plan: lanes over a few documents, plus deps pointing
    either way in submission order (any that would close a cycle are dropped)."""
    rng = random.Random(seed)
    last: dict[str, int] = {}
    entries: list[PlanEntry] = []
    for i in range(size):
        doc = f"doc-{rng.randrange(4)}"
        entries.append(entry(f"j{i}", doc, after=last.get(doc)))
        last[doc] = i
    for i, e in enumerate(entries):
        for j in rng.sample([j for j in range(size) if j != i], rng.randrange(3)):
            e.deps.append(j)
            try:
                Scheduler(entries)
            except ValueError:
                e.deps.pop()
    assert any(d > i for i, e in enumerate(entries) for d in e.deps)  # some point forward
    return entries


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 50])
@pytest.mark.parametrize("seed", range(8))
def test_no_job_is_handed_out_before_its_predecessors(seed: int, chunk_size: int) -> None:
    entries = dag(seed, 20)
    s = Scheduler(entries)
    rng = random.Random(seed * 1000 + chunk_size)
    done: set[int] = set()
    running: list[int] = []
    handed: list[int] = []
    while not s.finished:
        chunk = s.next_chunk(chunk_size)
        assert len(chunk) <= chunk_size
        for pos, i in enumerate(chunk):
            e = entries[i]
            preds = set(e.deps) | ({e.after} if e.after is not None else set())
            for p in preds:
                assert p in done or p in chunk[:pos], (i, p, chunk)
        handed += chunk
        running += chunk
        assert running, "scheduler stalled with jobs pending"
        # Finish a random part of what is running, as concurrent activities would.
        rng.shuffle(running)
        cut = rng.randrange(1, len(running) + 1)
        for i in running[:cut]:
            s.complete(ok(i))
            done.add(i)
        running = running[cut:]
    assert sorted(handed) == list(range(len(entries)))
    assert s.failed == 0
    assert all(status(s, i) is JobStatus.READ_READY for i in range(len(entries)))


# --- failures ------------------------------------------------------------------------


def test_job_after_a_failed_lane_predecessor_still_runs() -> None:
    s = Scheduler([entry("a", "doc"), entry("b", "doc", after=0)])
    assert s.next_chunk(1) == [0]
    s.complete(fail(0))
    assert status(s, 0) is JobStatus.FAILED
    assert status(s, 1) is JobStatus.PENDING
    assert s.next_chunk(1) == [1]
    s.complete(ok(1))
    assert status(s, 1) is JobStatus.READ_READY
    assert s.finished
    assert s.failed == 1


def test_dependent_of_a_failed_job_fails_transitively() -> None:
    s = Scheduler(
        [
            entry("parent"),
            entry("child", deps=(0,)),
            entry("grandchild", deps=(1,)),
            entry("bystander"),
        ]
    )
    assert s.next_chunk(1) == [0]
    s.complete(fail(0, "bad input"))
    assert s.states[0].error == JobError(type="ReducerError", message="bad input")
    child, grandchild = s.states[1], s.states[2]
    assert child.status is JobStatus.FAILED
    assert child.error is not None
    assert child.error.type == "DependencyFailed"
    assert child.error.dependency == "parent"
    assert "'parent'" in child.error.message
    assert grandchild.status is JobStatus.FAILED
    assert grandchild.error is not None
    assert grandchild.error.type == "DependencyFailed"
    assert grandchild.error.dependency == "child"
    assert s.failed == 3
    assert not s.finished
    assert s.next_chunk(10) == [3]
    s.complete(ok(3))
    assert s.finished
    assert s.failed == 3


def test_dependency_and_lane_after_the_same_failed_job() -> None:
    # b follows a on the lane *and* depends on it: the dependency wins.
    s = Scheduler([entry("a", "doc"), entry("b", "doc", deps=(0,), after=0)])
    s.next_chunk(1)
    s.complete(fail(0))
    assert status(s, 1) is JobStatus.FAILED
    assert s.states[1].error is not None and s.states[1].error.dependency == "a"
    assert s.finished


def test_dependent_of_failure_unblocks_its_lane_successor() -> None:
    # c is on b's lane without depending on it: b failing by cascade still lets c run.
    s = Scheduler([entry("a"), entry("b", "doc", deps=(0,)), entry("c", "doc", after=1)])
    assert s.next_chunk(1) == [0]
    s.complete(fail(0))
    assert status(s, 1) is JobStatus.FAILED
    assert s.next_chunk(5) == [2]
    s.complete(ok(2))
    assert s.finished
    assert s.failed == 2


def test_failure_without_error_gets_a_generic_one() -> None:
    s = Scheduler([entry("a")])
    s.next_chunk(1)
    s.complete(JobOutcome(index=0, ok=False))
    assert status(s, 0) is JobStatus.FAILED
    assert s.states[0].error is not None
    assert s.states[0].error.type == "Error"


def test_finished_and_failed_counts() -> None:
    s = Scheduler([entry("a"), entry("b"), entry("c", deps=(0,)), entry("d")])
    assert not s.finished
    assert s.failed == 0
    assert s.next_chunk(2) == [0, 1]
    s.complete(ok(1))
    assert not s.finished and s.failed == 0
    s.complete(fail(0))
    assert not s.finished and s.failed == 2  # a and its dependent c
    assert s.next_chunk(10) == [3]
    s.complete(ok(3))
    assert s.finished
    assert s.failed == 2


def test_success_records_coordinates() -> None:
    span = OperationSpan(
        document_id="doc-a", scope="global", branch="main", operation_index=4, count=3
    )
    s = Scheduler([entry("a")])
    s.next_chunk(1)
    s.complete(JobOutcome(index=0, ok=True, coordinates=[span]))
    assert s.states[0].coordinates == [span]


def test_complete_on_a_terminal_job_is_a_no_op() -> None:
    s = Scheduler([entry("a"), entry("b"), entry("c", deps=(1,))])
    s.next_chunk(10)
    s.complete(ok(0))
    s.complete(ok(0))
    s.complete(fail(0))
    assert status(s, 0) is JobStatus.READ_READY
    assert s.states[0].error is None
    assert s.failed == 0
    assert not s.finished  # the duplicate did not count twice

    s.complete(fail(1))
    s.complete(fail(1))
    s.complete(ok(1))
    assert status(s, 1) is JobStatus.FAILED
    assert s.failed == 1  # c was running (same chunk), so not cascaded
    s.complete(ok(2))
    assert s.finished
    assert s.failed == 1


def test_late_outcome_for_a_cascaded_job_is_ignored() -> None:
    s = Scheduler([entry("a"), entry("b", deps=(0,))])
    s.next_chunk(1)
    s.complete(fail(0))
    assert s.finished
    s.complete(ok(1))
    assert status(s, 1) is JobStatus.FAILED
    assert s.failed == 2
    assert s.finished


def test_full_run_in_order_with_chunks() -> None:
    entries = [
        entry("a", "x"),
        entry("b", "x", after=0),
        entry("c", "y", deps=(1,)),
        entry("d", "z"),
        entry("e", "y", after=2, deps=(3,)),
    ]
    chunks = run_all(Scheduler(entries), chunk_size=2)
    assert chunks == [[0, 1], [2, 3], [4]]


# --- jobs a blocked read model holds; counts kept as jobs move --------------------


def held(index: int) -> JobOutcome:
    return JobOutcome(
        index=index,
        ok=True,
        held=JobError(type="ReadModelBlocked", message="read model 'x' is blocked: boom"),
    )


def test_a_held_job_ends_write_ready_with_its_notice_and_its_dependents_run() -> None:
    s = Scheduler([entry("a"), entry("b", deps=(0,)), entry("c", "doc-a", after=0)])
    assert s.next_chunk(1) == [0]
    s.complete(held(0))
    assert status(s, 0) is JobStatus.WRITE_READY and s.ended(0)
    error = s.states[0].error
    assert error is not None and error.type == "ReadModelBlocked"
    assert s.held_order == [0] and s.failed == 0
    # Its dependent and its lane successor go on: what they need is written.
    assert s.next_chunk(10) == [1, 2]
    s.complete(ok(1))
    s.complete(held(2))
    assert s.finished
    assert s.held_order == [0, 2]
    # Ended: a late outcome does not move it.
    s.complete(fail(0))
    assert status(s, 0) is JobStatus.WRITE_READY and s.failed == 0


def test_counts_follow_every_move() -> None:
    s = Scheduler([entry("a"), entry("b", deps=(0,)), entry("c"), entry("d")])

    def counts() -> dict[str, int]:
        return {k.value: v for k, v in s.counts.items() if v}

    assert counts() == {"PENDING": 4}
    s.next_chunk(1)
    assert counts() == {"PENDING": 3, "RUNNING": 1}
    s.complete(fail(0))  # fails b too, which was pending
    assert counts() == {"PENDING": 2, "FAILED": 2}
    assert s.failed_order == [0, 1]
    s.next_chunk(10)
    s.complete(ok(2))
    s.complete(held(3))
    assert counts() == {"FAILED": 2, "READ_READY": 1, "WRITE_READY": 1}
    assert sum(s.counts.values()) == 4 and s.finished
