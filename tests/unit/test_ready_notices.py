"""Read-ready announcements on the client (reactor/application/ready_notices.py):
what they turn into, what they ignore, and that they stay bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reactor.application.ready_notices import ReadyNotices
from reactor.domain.jobs import Coordinate, JobInfo, JobStatus


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


def job_info_of(payload: dict[str, Any]) -> JobInfo | None:
    """What a client holding this announcement answers for its job."""
    notices = ReadyNotices()
    notices.on_commit(payload)
    return notices.get(payload["job_id"])


def test_an_announcement_reads_as_the_job_info_its_workflow_reports() -> None:
    info = job_info_of(announcement())
    assert info is not None
    assert (info.id, info.key, info.batch_id, info.document_id) == (
        "b1:3",
        "add-two",
        "b1",
        "doc-1",
    )
    assert info.status is JobStatus.READ_READY and info.error is None
    assert info.consistency_token is not None
    assert info.consistency_token.coordinates == [
        Coordinate(document_id="doc-1", scope="global", branch="main", operation_index=i)
        for i in (7, 8)
    ]


def test_announcements_without_read_ready_or_incomplete_are_ignored() -> None:
    notices = ReadyNotices()
    notices.on_commit(announcement("b1:0", ready=False))  # a worker with read models
    notices.on_commit({**announcement("b1:1"), "key": None} | {"events": "x"})
    notices.on_commit({"read_ready": True, "job_id": 7})
    assert notices.get("b1:0") is None
    assert notices.get("b1:1") is None  # unreadable: the workflow answers
    assert len(notices) == 0


def test_the_window_keeps_the_latest_announcements_only() -> None:
    notices = ReadyNotices(capacity=3)
    for i in range(5):
        notices.on_commit(announcement(f"b1:{i}"))
    assert len(notices) == 3
    assert [notices.get(f"b1:{i}") is not None for i in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]


async def test_a_waiter_gets_the_announcement_when_it_arrives() -> None:
    notices = ReadyNotices()
    waiting = asyncio.ensure_future(notices.wait("b1:3"))
    await asyncio.sleep(0)
    assert notices.waiting == 1 and not waiting.done()
    notices.on_commit(announcement("b1:2"))  # another job's
    await asyncio.sleep(0)
    assert not waiting.done()
    notices.on_commit(announcement("b1:3"))
    info = await asyncio.wait_for(waiting, 1)
    assert info.id == "b1:3" and info.status is JobStatus.READ_READY
    assert notices.waiting == 0


async def test_an_announcement_that_came_first_answers_at_once() -> None:
    notices = ReadyNotices()
    notices.on_commit(announcement("b1:3"))
    info = await asyncio.wait_for(notices.wait("b1:3"), 1)
    assert info.key == "add-two"


async def test_a_cancelled_waiter_leaves_nothing_behind() -> None:
    notices = ReadyNotices()
    waiting = asyncio.ensure_future(notices.wait("b1:3"))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert notices.waiting == 0


async def test_an_unreadable_announcement_hands_the_waiter_back_to_the_workflow() -> None:
    notices = ReadyNotices()
    waiting = asyncio.ensure_future(notices.wait("b1:3"))
    await asyncio.sleep(0)
    notices.on_commit({**announcement("b1:3"), "events": [{"index": 1}]})
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, 1)
    assert notices.waiting == 0


def test_the_announcement_after_read_models_caught_up_reads_the_same() -> None:
    compact = {
        "by": "worker-1",
        "job_id": "b1:3",
        "key": "add-two",
        "document_id": "doc-1",
        "branch": "main",
        "scope": "global",
        "index": 7,
        "count": 2,
        "read_ready": True,
    }
    assert _without_time(job_info_of(compact)) == _without_time(job_info_of(announcement()))


def _without_time(info: Any) -> dict[str, Any]:
    data: dict[str, Any] = info.model_dump()
    data["consistency_token"].pop("created_at")
    return data
