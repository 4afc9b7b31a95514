"""Commit notifications sent after the commit, several commits per message
(reactor/storage/notify.py), against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from reactor.storage.database import Database
from reactor.storage.notify import MAX_PAYLOAD, CommitNotifier, NotifyListener
from tests.conftest import wait_until

CHANNEL = "reactor_test_commits"


@pytest.fixture
async def heard(database_url: str) -> AsyncIterator[list[dict[str, Any]]]:
    """Every payload a separate LISTEN connection hands its handlers."""
    payloads: list[dict[str, Any]] = []
    listener = NotifyListener(database_url, [CHANNEL])
    listener.add_handler(lambda _ch, payload: payloads.append(payload))
    await listener.start()
    yield payloads
    await listener.stop()


def commit(n: int, events: int = 1) -> dict[str, Any]:
    return {
        "document_id": f"doc-{n}",
        "document_type": "powerhouse/todo-list",
        "job_id": f"job-{n}",
        "events": [
            {"ordinal": n * 1000 + e, "type": "ADD_TODO_ITEM", "scope": "global", "index": e}
            for e in range(events)
        ],
    }


def test_messages_stay_under_the_limit_and_keep_order(db: Database) -> None:
    notifier = CommitNotifier(db.pool, CHANNEL, "me")
    commits = [json.dumps(commit(n, events=20)).encode() for n in range(60)]
    messages = notifier._messages(commits)
    assert len(messages) > 1
    assert all(len(m.encode()) <= MAX_PAYLOAD for m in messages)
    decoded = [json.loads(m) for m in messages]
    assert {d["by"] for d in decoded} == {"me"}
    assert [c["job_id"] for d in decoded for c in d["commits"]] == [f"job-{n}" for n in range(60)]


async def test_one_tick_of_commits_is_one_message_split_again_by_the_listener(
    db: Database, heard: list[dict[str, Any]]
) -> None:
    notifier = CommitNotifier(db.pool, CHANNEL, "writer-1")
    await asyncio.gather(*(notifier.publish(commit(n)) for n in range(8)))
    assert notifier.messages == 1  # all eight were pending in the same tick

    async def all_heard() -> bool:
        return len(heard) == 8

    await wait_until(all_heard, 5, "eight commit payloads")
    assert [p["job_id"] for p in heard] == [f"job-{n}" for n in range(8)]
    assert all(p["by"] == "writer-1" and len(p["events"]) == 1 for p in heard)


async def test_an_oversize_commit_is_not_sent_and_the_others_are(
    db: Database, heard: list[dict[str, Any]]
) -> None:
    notifier = CommitNotifier(db.pool, CHANNEL, "writer-2")
    await asyncio.gather(notifier.publish(commit(1, events=200)), notifier.publish(commit(2)))

    async def small_heard() -> bool:
        return any(p["job_id"] == "job-2" for p in heard)

    await wait_until(small_heard, 5, "the small commit's payload")
    assert [p["job_id"] for p in heard] == ["job-2"]


async def test_a_failed_send_does_not_fail_the_publisher(db: Database) -> None:
    notifier = CommitNotifier(db.pool, "", "writer-3")  # an empty channel name is an error
    await notifier.publish(commit(1))  # returns: a notification is a hint
    assert notifier.messages == 0


def test_a_commit_just_under_the_limit_fits_one_at_the_limit_does_not(db: Database) -> None:
    notifier = CommitNotifier(db.pool, CHANNEL, 'id "quoted"')
    room = MAX_PAYLOAD - len(notifier._envelope(b""))
    fits, too_big = b"x" * (room - 1), b"x" * room
    assert [len(m.encode()) for m in notifier._messages([fits])] == [MAX_PAYLOAD - 1]
    assert len(notifier._envelope(too_big)) == MAX_PAYLOAD  # publish() drops this one
    assert json.loads(notifier._envelope(b"{}"))["by"] == 'id "quoted"'


async def test_postgresql_takes_the_largest_message_we_send(
    db: Database, heard: list[dict[str, Any]]
) -> None:
    notifier = CommitNotifier(db.pool, CHANNEL, "writer-4")
    base = {"job_id": "big-but-fits", "pad": ""}
    envelope = notifier._envelope(json.dumps(base, separators=(",", ":")).encode())
    await notifier.publish({**base, "pad": "x" * (MAX_PAYLOAD - 1 - len(envelope))})
    assert notifier.messages == 1

    async def heard_it() -> bool:
        return any(p["job_id"] == "big-but-fits" for p in heard)

    await wait_until(heard_it, 5, "the largest message")
