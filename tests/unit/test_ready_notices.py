"""Read-ready announcements on the client (reactor/application/ready_notices.py):
what they turn into, what they ignore, that only the ledger's word counts,
and that they stay bounded. The ledger here is a dict (a pure unit test);
tests/test_forged_notices.py sends forged NOTIFYs to the real stack."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from reactor.application.ready_notices import MAX_OPERATIONS, ReadyNotices
from reactor.domain.jobs import Coordinate, JobStatus, OperationSpan

SPAN = OperationSpan(document_id="doc-1", scope="global", branch="main", operation_index=7, count=2)


class Ledger:
    """Job id -> the spans its ledger row records as applied; counts asks."""

    def __init__(self, applied: dict[str, list[OperationSpan]] | None = None):
        self.applied = dict(applied or {})
        self.asked: list[str] = []

    async def __call__(self, job_id: str, _claimed: OperationSpan) -> list[OperationSpan] | None:
        self.asked.append(job_id)
        answer = self.applied.get(job_id)
        await asyncio.sleep(0)  # the round trip back
        return answer


def notices_for(ledger: Ledger, *, jobs: int = 5, **kwargs: Any) -> ReadyNotices:
    """Notices of a reactor that submitted batch b1 with `jobs` jobs."""
    notices = ReadyNotices(ledger, **kwargs)
    notices.submitted("b1", [(f"key-{i}", "doc-1") for i in range(jobs)])
    return notices


def announcement(job_id: str = "b1:3", *, ready: bool = True, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "by": "worker-1",
        "document_id": "doc-1",
        "document_type": "powerhouse/todo-list",
        "job_id": job_id,
        "key": "add-two",
        "branch": "main",
        "events": [
            {"ordinal": 40, "type": "ADD_TODO_ITEM", "scope": "global", "index": 7},
            {"ordinal": 41, "type": "ADD_TODO_ITEM", "scope": "global", "index": 8},
        ],
        **extra,
    }
    if ready:
        payload["read_ready"] = True
    return payload


def compact(job_id: str = "b1:3", **extra: Any) -> dict[str, Any]:
    """The announcement of a worker with read models, once they caught up."""
    return {
        "by": "worker-1",
        "job_id": job_id,
        "key": "add-two",
        "document_id": "doc-1",
        "branch": "main",
        "scope": "global",
        "index": 7,
        "count": 2,
        "read_ready": True,
        **extra,
    }


async def test_a_confirmed_announcement_reads_as_the_job_info_its_workflow_reports() -> None:
    notices = notices_for(Ledger({"b1:3": [SPAN]}))
    notices.on_commit(announcement())
    info = await notices.confirmed("b1:3")
    assert info is not None
    assert (info.id, info.key, info.batch_id, info.document_id) == (
        "b1:3",
        "key-3",  # as submitted, not as announced
        "b1",
        "doc-1",
    )
    assert info.status is JobStatus.READ_READY and info.error is None
    assert info.consistency_token is not None
    assert info.consistency_token.coordinates == [
        Coordinate(document_id="doc-1", scope="global", branch="main", operation_index=i)
        for i in (7, 8)
    ]
    assert notices.get("b1:3") == info


async def test_the_token_comes_from_the_ledger_not_from_the_announcement() -> None:
    recorded = OperationSpan(
        document_id="doc-1", scope="global", branch="main", operation_index=3, count=1
    )
    notices = notices_for(Ledger({"b1:3": [recorded]}))
    notices.on_commit(compact(index=900, count=9_000))
    info = await notices.confirmed("b1:3")
    assert info is not None and info.consistency_token is not None
    assert [c.operation_index for c in info.consistency_token.coordinates] == [3]


async def test_an_announcement_the_ledger_does_not_confirm_answers_nothing() -> None:
    ledger = Ledger()  # failed, or not run yet: no applied row
    notices = notices_for(ledger)
    notices.on_commit(announcement())
    assert notices.announced("b1:3")
    assert await notices.confirmed("b1:3") is None
    assert notices.get("b1:3") is None and not notices.announced("b1:3")
    assert ledger.asked == ["b1:3"] and notices.refuted == 1


async def test_jobs_this_reactor_did_not_submit_are_left_to_their_workflow() -> None:
    ledger = Ledger({"b2:0": [SPAN], "b1:9": [SPAN]})
    notices = notices_for(ledger, jobs=5)
    notices.on_commit(announcement("b2:0"))  # another batch
    notices.on_commit(announcement("b1:9"))  # past the batch's jobs
    assert await notices.confirmed("b2:0") is None
    assert await notices.confirmed("b1:9") is None
    assert ledger.asked == []


def test_announcements_without_read_ready_are_ignored() -> None:
    notices = notices_for(Ledger())
    notices.on_commit(announcement("b1:0", ready=False))  # a worker with read models
    assert not notices.announced("b1:0") and notices.dropped == 0


@pytest.mark.parametrize(
    "payload",
    [
        {**announcement("b1:1"), "key": None},
        {**announcement("b1:1"), "events": "x"},
        {**announcement("b1:1"), "events": []},
        {**announcement("b1:1"), "events": [{"index": 1}]},
        {**announcement("b1:1"), "events": [7]},
        {**announcement("b1:1"), "branch": 3},
        {"read_ready": True, "job_id": 7},
        {"read_ready": True, "job_id": "not a job id"},
        {"read_ready": True, "job_id": "b1:1"},  # nothing else
        compact("b1:1", count=MAX_OPERATIONS + 1),
        compact("b1:1", count=10**12),
        compact("b1:1", count=0),
        compact("b1:1", count=-5),
        compact("b1:1", count=True),
        compact("b1:1", count="2"),
        compact("b1:1", index=-1),
        compact("b1:1", index=1.5),
        compact("b1:1", scope=None),
        {**announcement("b1:1"), "events": [announcement()["events"][0]] * (MAX_OPERATIONS + 1)},
    ],
)
def test_malformed_or_oversized_payloads_are_dropped_with_a_debug_log(
    payload: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    notices = notices_for(Ledger())
    with caplog.at_level(logging.DEBUG, logger="reactor.notices"):
        notices.on_commit(payload)
    assert not notices.announced("b1:1") and notices.dropped == 1
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    assert "dropped" in caplog.records[0].getMessage()


async def test_the_largest_claim_a_job_may_make_is_read() -> None:
    notices = notices_for(Ledger({"b1:1": [SPAN]}))
    notices.on_commit(compact("b1:1", count=MAX_OPERATIONS))
    assert notices.announced("b1:1") and notices.dropped == 0


async def test_the_window_keeps_the_latest_confirmed_announcements_only() -> None:
    notices = notices_for(Ledger({f"b1:{i}": [SPAN] for i in range(5)}), capacity=3)
    for i in range(5):
        notices.on_commit(announcement(f"b1:{i}"))
        await notices.confirmed(f"b1:{i}")
    assert len(notices) == 3
    assert [notices.get(f"b1:{i}") is not None for i in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]


def test_submitted_batches_are_remembered_up_to_a_number_of_jobs() -> None:
    notices = ReadyNotices(Ledger(), submitted_capacity=10)
    notices.submitted("a", [("k", "d")] * 4)
    notices.submitted("b", [("k", "d")] * 4)
    notices.submitted("c", [("k", "d")] * 4)  # "a" goes
    notices.submitted("huge", [("k", "d")] * 11)  # never held
    notices.on_commit(announcement("a:0"))
    notices.on_commit(announcement("c:0"))
    notices.on_commit(announcement("huge:0"))
    assert [notices.announced(j) for j in ("a:0", "c:0", "huge:0")] == [False, True, False]


async def test_a_waiter_gets_the_announcement_once_the_ledger_confirms_it() -> None:
    ledger = Ledger({"b1:2": [SPAN], "b1:3": [SPAN]})
    notices = notices_for(ledger)
    waiting = asyncio.ensure_future(notices.wait("b1:3"))
    await asyncio.sleep(0)
    assert notices.waiting == 1 and not waiting.done()
    notices.on_commit(announcement("b1:2"))  # another job's: nobody asks, nothing checked
    await asyncio.sleep(0)
    assert not waiting.done() and ledger.asked == []
    notices.on_commit(announcement("b1:3"))
    info = await asyncio.wait_for(waiting, 1)
    assert info.id == "b1:3" and info.status is JobStatus.READ_READY
    assert notices.waiting == 0 and ledger.asked == ["b1:3"]


async def test_an_unconfirmed_announcement_hands_the_waiter_back_to_the_workflow() -> None:
    notices = notices_for(Ledger())
    waiting = asyncio.ensure_future(notices.wait("b1:3"))
    await asyncio.sleep(0)
    notices.on_commit(announcement("b1:3"))
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, 1)
    assert notices.waiting == 0


async def test_an_announcement_during_a_check_is_checked_again() -> None:
    """The forged notice's check read the ledger before the commit; the
    real announcement that arrives meanwhile gets a check of its own."""
    ledger = Ledger()
    notices = notices_for(ledger)
    waiter = notices.waiter("b1:3")
    notices.on_commit(announcement("b1:3", key="forged"))
    await asyncio.sleep(0)  # its check reads the ledger
    ledger.applied["b1:3"] = [SPAN]  # the job commits after the ledger was read...
    notices.on_commit(announcement("b1:3"))  # ...and is announced
    info = await asyncio.wait_for(waiter, 1)
    assert info.key == "key-3" and ledger.asked == ["b1:3", "b1:3"]
    notices.discard("b1:3", waiter)


async def test_a_cancelled_waiter_leaves_nothing_behind() -> None:
    notices = notices_for(Ledger())
    waiting = asyncio.ensure_future(notices.wait("b1:3"))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert notices.waiting == 0


async def test_a_confirmed_job_ignores_later_announcements() -> None:
    ledger = Ledger({"b1:3": [SPAN]})
    notices = notices_for(ledger)
    notices.on_commit(announcement())
    first = await notices.confirmed("b1:3")
    notices.on_commit(compact(index=0, count=1))
    assert await notices.confirmed("b1:3") == first and ledger.asked == ["b1:3"]


async def test_a_ledger_that_cannot_be_read_confirms_nothing() -> None:
    async def down(_job_id: str, _claimed: OperationSpan) -> list[OperationSpan] | None:
        raise OSError("connection refused")

    notices = notices_for(Ledger())
    notices.confirm = down
    notices.on_commit(announcement())
    assert await notices.confirmed("b1:3") is None


async def test_close_cancels_checks_in_flight() -> None:
    never: asyncio.Future[list[OperationSpan] | None] = asyncio.get_running_loop().create_future()

    async def stuck(_job_id: str, _claimed: OperationSpan) -> list[OperationSpan] | None:
        return await never

    notices = notices_for(Ledger())
    notices.confirm = stuck
    waiter = notices.waiter("b1:3")
    notices.on_commit(announcement())
    await asyncio.sleep(0)
    await notices.close()
    assert waiter.cancelled()
