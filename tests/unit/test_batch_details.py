"""The batch workflow's current details (markdown for the Temporal UI)."""

from __future__ import annotations

from datetime import UTC, datetime

from reactor.domain.batch import PlanEntry
from reactor.domain.batch_details import ChunkInFlight, render
from reactor.domain.jobs import JobError, JobOutcome
from reactor.domain.scheduling import Scheduler


def entry(key: str, deps: tuple[int, ...] = ()) -> PlanEntry:
    return PlanEntry(key=key, document_id=f"doc-{key}", document_type="t", deps=list(deps))


def failed(index: int, message: str) -> JobOutcome:
    return JobOutcome(index=index, ok=False, error=JobError(type="ReducerError", message=message))


def test_failed_jobs_are_listed_up_to_twenty_then_counted() -> None:
    s = Scheduler([entry(f"k{i}") for i in range(25)])
    s.next_chunk(25)
    for i in range(25):
        s.complete(failed(i, f"bad input {i}"))
    text = render("b1", 25, s, [])
    assert text.startswith("**Batch** `b1` finished: 25 jobs (FAILED 25)")
    assert "**Failed jobs** (25)" in text
    assert "- `k0` (document `doc-k0`): **ReducerError**: bad input 0" in text
    assert "- `k19` (document `doc-k19`)" in text and "`k20`" not in text
    assert text.endswith("- and 5 more")


def test_dependents_name_the_dependency_that_failed_them() -> None:
    s = Scheduler([entry("parent"), entry("child", deps=(0,))])
    s.next_chunk(1)
    s.complete(failed(0, "no"))
    text = render("b2", 2, s, [])
    assert (
        "- `child` (document `doc-child`): **DependencyFailed**: dependency 'parent' failed "
        "(failed dependency `parent`)" in text
    )


def test_chunks_in_flight_show_their_first_jobs_attempts_and_last_failure() -> None:
    s = Scheduler([entry(f"k{i}") for i in range(5)])
    chunk = ChunkInFlight(s.next_chunk(5), 12, False, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    chunk.local_attempts = 5
    chunk.failures.append("ConnectionError: database *unreachable*")
    text = render("b3", 5, s, [chunk])
    assert "running: 5 jobs (RUNNING 5)" in text
    assert "**In flight** (1 chunk)" in text
    assert (
        "- 5 jobs (12 actions) from `k0`, `k1`, `k2` and 2 more: activity, attempts: see "
        "Pending Activities (after 5 local attempts), since 2026-01-02 03:04:05 UTC; "
        "last failure: ConnectionError: database \\*unreachable\\*" in text
    )


def test_attempts_the_workflow_cannot_see_are_not_shown() -> None:
    s = Scheduler([entry("r"), entry("l")])
    since = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    regular = ChunkInFlight(s.next_chunk(1), 1, False, since)
    local = ChunkInFlight(s.next_chunk(1), 1, True, since)
    text = render("b5", 2, s, [regular, local])
    assert "`r`: activity, attempts: see Pending Activities, since" in text
    assert "`l`: local activity, since" in text
    assert "attempt 1" not in text


def test_keys_cannot_break_out_of_their_code_span() -> None:
    s = Scheduler([PlanEntry(key="a`b\nc", document_id="d", document_type="t")])
    s.next_chunk(1)
    s.complete(failed(0, "x"))
    assert "- `a'b c` (document `d`)" in render("b4", 1, s, [])
