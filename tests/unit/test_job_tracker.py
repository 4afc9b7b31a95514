"""Job events from notifications (reactor/application/job_tracker.py): an
announcement moves a followed job forward only as far as the job ledger
confirms, costs one ledger read, and a payload of another shape is dropped.
The ledger here is a dict (a pure unit test); tests/test_forged_notices.py
sends forged NOTIFYs to the real stack."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from reactor.application.events import EventBus, JobEvent, ReactorEventTypes
from reactor.application.job_tracker import JobTracker
from reactor.domain.jobs import JobInfo, JobStatus, OperationSpan

SPAN = OperationSpan(document_id="doc-1", scope="global", branch="main", operation_index=0)


class Ledger:
    """Job ids the ledger records as applied, and those the read models
    indexed too; counts what it is asked."""

    def __init__(self, applied: set[str] | None = None, indexed: set[str] | None = None):
        self.applied_jobs = set(applied or ())
        self.indexed = set(indexed or ())
        self.asked: list[tuple[str, str]] = []

    async def applied(self, job_id: str) -> list[OperationSpan] | None:
        self.asked.append(("applied", job_id))
        await asyncio.sleep(0)  # the round trip
        return [SPAN] if job_id in self.applied_jobs else None

    async def read_ready(self, job_id: str) -> list[OperationSpan] | None:
        self.asked.append(("read_ready", job_id))
        await asyncio.sleep(0)
        ok = job_id in self.applied_jobs and job_id in self.indexed
        return [SPAN] if ok else None


class Operations:
    async def get_by_job(self, _job_id: str) -> list[Any]:
        return []


class Handle:
    """A batch workflow that completes when told to."""

    id = "b1"

    def __init__(self) -> None:
        self.closed = asyncio.Event()

    async def result(self) -> None:
        await self.closed.wait()


async def settle() -> None:
    """Lets the tracker's confirmations run to their end (no real I/O here:
    a bounded number of loop turns)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def followed(
    ledger: Ledger, final: list[JobInfo] | None = None
) -> tuple[JobTracker, list[tuple[str, str]], Handle]:
    """A tracker following batch b1 (jobs b1:0 and b1:1), and the events it emits."""
    bus = EventBus()
    seen: list[tuple[str, str]] = []

    def record(event_type: str, event: JobEvent) -> None:
        seen.append((event_type, event.job_id))

    for event_type in ReactorEventTypes:
        bus.subscribe(event_type, record)
    tracker = JobTracker(bus, Operations(), ledger)  # type: ignore[arg-type]
    jobs = [JobInfo(id=f"b1:{i}", key=f"k{i}", batch_id="b1", document_id="doc-1") for i in (0, 1)]
    handle = Handle()

    async def fetch() -> list[JobInfo]:
        return final or []

    await tracker.submitted(jobs, handle, fetch)  # type: ignore[arg-type]
    return tracker, seen, handle


def commit(job_id: str, **extra: Any) -> dict[str, Any]:
    return {"by": "w", "job_id": job_id, "document_id": "doc-1", "branch": "main", **extra}


def events_of(seen: list[tuple[str, str]], job_id: str) -> list[str]:
    return [t for t, j in seen if j == job_id]


async def test_a_commit_yields_write_ready_once_the_ledger_says_applied() -> None:
    """With read models: the commit is confirmed by the ledger alone, the
    read-ready announcement only once the read models indexed the job."""
    ledger = Ledger(applied={"b1:0"})
    tracker, seen, _ = await followed(ledger)
    tracker.on_commit(commit("b1:0"))
    await settle()
    assert events_of(seen, "b1:0") == ["JOB_PENDING", "JOB_RUNNING", "JOB_WRITE_READY"]
    tracker.on_commit(commit("b1:0", read_ready=True))  # read models not there yet
    await settle()
    assert events_of(seen, "b1:0")[-1] == "JOB_WRITE_READY" and tracker.refuted == 1
    ledger.indexed.add("b1:0")
    tracker.on_commit(commit("b1:0", read_ready=True))
    await settle()
    assert events_of(seen, "b1:0")[-1] == "JOB_READ_READY"
    assert ledger.asked == [("applied", "b1:0"), ("read_ready", "b1:0"), ("read_ready", "b1:0")]
    await tracker.close()


async def test_announcements_the_ledger_does_not_confirm_emit_nothing() -> None:
    ledger = Ledger()  # failed, or not run yet
    tracker, seen, _ = await followed(ledger)
    tracker.on_commit(commit("b1:1"))
    tracker.on_commit(commit("b1:1", read_ready=True))
    await settle()
    assert events_of(seen, "b1:1") == ["JOB_PENDING"]
    assert tracker.refuted == 2
    await tracker.close()


async def test_only_announcements_that_would_move_a_followed_job_cost_a_read() -> None:
    ledger = Ledger(applied={"b1:0", "b9:0"}, indexed={"b1:0", "b9:0"})
    tracker, seen, _ = await followed(ledger)
    tracker.on_commit(commit("b9:0", read_ready=True))  # not submitted here
    tracker.on_commit({"by": "w", "channel": "something else"})  # names no job
    tracker.on_commit(commit("b1:0", read_ready=True))
    await settle()
    tracker.on_commit(commit("b1:0"))  # behind what was emitted already
    tracker.on_commit(commit("b1:0", read_ready=True))  # emitted already
    await settle()
    assert ledger.asked == [("read_ready", "b1:0")]
    assert events_of(seen, "b1:0") == [
        "JOB_PENDING",
        "JOB_RUNNING",
        "JOB_WRITE_READY",
        "JOB_READ_READY",
    ]
    assert not events_of(seen, "b9:0")
    await tracker.close()


@pytest.mark.parametrize(
    "payload",
    [
        ["b1:0"],
        "b1:0",
        commit("b1:0") | {"job_id": 0},
        commit("b1:0") | {"job_id": ["b1:0"]},
        commit("b1:0") | {"read_ready": "true"},
        commit("b1:0") | {"read_ready": 1},
    ],
    ids=["list", "string", "int-job-id", "list-job-id", "string-flag", "int-flag"],
)
async def test_a_malformed_payload_is_dropped_with_a_debug_log(
    payload: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = Ledger(applied={"b1:0"}, indexed={"b1:0"})
    tracker, seen, _ = await followed(ledger)
    with caplog.at_level(logging.DEBUG, logger="reactor.jobs"):
        tracker.on_commit(payload)
        await settle()
    assert tracker.dropped == 1 and not ledger.asked
    assert events_of(seen, "b1:0") == ["JOB_PENDING"]
    assert any("dropped" in r.getMessage() for r in caplog.records)
    await tracker.close()


async def test_a_confirmation_that_lands_after_the_batch_closed_emits_nothing_more() -> None:
    """The workflow's completion already told the job's whole story; the
    ledger's late answer to an announcement does not repeat any of it."""
    ledger = Ledger(applied={"b1:0"}, indexed={"b1:0"})
    final = [
        JobInfo(
            id="b1:0", key="k0", batch_id="b1", document_id="doc-1", status=JobStatus.READ_READY
        )
    ]
    tracker, seen, handle = await followed(ledger, final)
    # Asked first, but the ledger answers after the workflow's completion
    # was handled (the fake's round trip yields; the completion does not).
    tracker.on_commit(commit("b1:0", read_ready=True))
    handle.closed.set()
    await settle()
    assert events_of(seen, "b1:0") == [
        "JOB_PENDING",
        "JOB_RUNNING",
        "JOB_WRITE_READY",
        "JOB_READ_READY",
    ]
    assert tracker.tracked == 0
    await tracker.close()
