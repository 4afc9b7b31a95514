"""Commit notifications sent after the commit, several commits per message
(reactor/storage/notify.py), against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from temporalio.testing import ActivityEnvironment

from activities.batch import ApplyJobsInput, BatchActivities
from reactor.application.apply import JobApplier
from reactor.domain.batch import BatchRequest, ExistingDocument, plan_batch
from reactor.runtime.worker import registry_of
from reactor.storage.database import Database
from reactor.storage.job_ledger import JobLedger
from reactor.storage.notify import MAX_PAYLOAD, CommitNotifier, NotifyListener
from tests.conftest import wait_until
from tests.support.direct import DirectWriter

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


def test_a_payload_that_is_not_json_reaches_no_handler_and_raises_nothing() -> None:
    """Anyone may NOTIFY on the channel: what does not parse is dropped
    where it arrives (an exception there would only reach asyncpg's log)."""
    listener = NotifyListener("postgresql://unused", [CHANNEL])
    got: list[dict[str, Any]] = []
    listener.add_handler(lambda _ch, payload: got.append(payload))
    for bad in ("not json {", "", '{"commits": [1, "x", {"job_id": "j"}]'):
        listener._dispatch(None, 0, CHANNEL, bad)
    listener._dispatch(None, 0, CHANNEL, '{"by": "w", "commits": [1, {"job_id": "j"}]}')
    assert got == [{"by": "w", "job_id": "j"}]


async def test_an_oversize_commit_is_not_sent_and_the_others_are(
    db: Database, heard: list[dict[str, Any]]
) -> None:
    notifier = CommitNotifier(db.pool, CHANNEL, "writer-2")
    await asyncio.gather(notifier.publish(commit(1, events=200)), notifier.publish(commit(2)))

    async def small_heard() -> bool:
        return any(p["job_id"] == "job-2" for p in heard)

    await wait_until(small_heard, 5, "the small commit's payload")
    assert [p["job_id"] for p in heard] == ["job-2"]


async def test_an_oversize_commit_goes_out_in_its_short_form(
    db: Database, heard: list[dict[str, Any]]
) -> None:
    notifier = CommitNotifier(db.pool, CHANNEL, "writer-6")
    big = commit(1, events=200)
    short = {"job_id": "job-1", "scope": "global", "index": 0, "count": 200}
    built: list[int] = []

    def shorten() -> dict[str, Any]:
        built.append(1)
        return short

    await notifier.publish(big, oversize=shorten)
    await notifier.publish(commit(2), oversize=shorten)  # fits: never shortened

    async def both_heard() -> bool:
        return len(heard) == 2

    await wait_until(both_heard, 5, "both commits")
    assert heard[0] == {"by": "writer-6", **short}
    assert heard[1]["job_id"] == "job-2" and len(heard[1]["events"]) == 1
    assert built == [1]


def test_a_short_form_over_the_limit_is_not_sent_either(db: Database) -> None:
    notifier = CommitNotifier(db.pool, CHANNEL, "writer-7")
    sent = notifier.announce(commit(1, events=200), oversize=lambda: commit(1, events=150))
    assert sent is None and notifier._pending == []


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


async def test_jobs_go_on_while_the_notify_waits_and_the_activity_reports_after_it(
    db: Database, database_url: str, heard: list[dict[str, Any]]
) -> None:
    """A lane's next job starts as soon as the previous one committed, not
    when its NOTIFY went out; the activity returns only once every commit of
    the chunk was announced."""
    writer = DirectWriter(db, notify=False)
    await writer.create_list("lane-doc")
    applier = JobApplier(db, registry_of(), notify_channel=CHANNEL, instance_id="w-5")
    stalled = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    assert stalled is not None
    applier.notifier = CommitNotifier(stalled, CHANNEL, "w-5")  # its one connection is ours
    request = BatchRequest.model_validate(
        {
            "batch_id": "lane-batch",
            "jobs": [
                {
                    "key": f"k{n}",
                    "document_id": "lane-doc",
                    "actions": [{"type": "ADD_TODO_ITEM", "input": {"id": f"i{n}", "text": "t"}}],
                }
                for n in range(3)
            ],
        }
    )
    plan = plan_batch(
        request, registry_of(), {"lane-doc": ExistingDocument("powerhouse/todo-list")}
    )
    activities = BatchActivities(applier, JobLedger(db))
    try:
        async with stalled.acquire():
            run = asyncio.create_task(
                ActivityEnvironment().run(
                    activities.apply_jobs,
                    ApplyJobsInput(batch_id=plan.batch_id, indices=[0, 1, 2], jobs=plan.jobs),
                )
            )

            async def all_committed() -> bool:
                revision = await db.pool.fetchval(
                    "SELECT revision FROM reactor_document_states"
                    " WHERE document_id = 'lane-doc' AND scope = 'global'"
                )
                return bool(revision == 3)

            await wait_until(all_committed, 5, "the three jobs of the lane committed")
            await asyncio.sleep(0.2)
            assert not run.done()  # not reported: nothing announced yet
            assert heard == []
        outcomes = await asyncio.wait_for(run, 5)
    finally:
        await stalled.close()
    assert [o.ok for o in outcomes] == [True, True, True]

    async def all_heard() -> bool:
        return len(heard) == 3

    await wait_until(all_heard, 5, "three commit payloads")
    assert [p["job_id"] for p in heard] == [f"lane-batch:{n}" for n in range(3)]
