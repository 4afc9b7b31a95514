"""SIGTERM drains a worker: its in-flight activities finish (each on its
first attempt: nothing is abandoned to a heartbeat timeout), it stops
polling and exits 0; a second worker completes the batch exactly once.

Both ways a chunk runs: as a regular activity (checked in the workflow
history too) and as a local activity (small chunks, inside the workflow
task)."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import UTC
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType, PendingActivityState

from reactor.api.reactor import Reactor
from reactor.domain.jobs import JobStatus, workflow_id_for
from reactor.domain.workflow_io import BatchConfig
from reactor.storage.database import Database
from tests.conftest import Stack, spawn_worker, wait_until
from tests.test_crash_safety import DOCS, assert_log_is_exact, count_global_ops, creates, item_jobs

JOBS, ACTIONS = 300, 2
GRACE_S = 30  # WorkerConfig.graceful_shutdown


@pytest.mark.parametrize("kind", ["activity", "local"])
async def test_sigterm_drains_in_flight_activities_then_a_second_worker_finishes(
    kind: str,
    stack: Stack,
    reactor: Reactor,
    db: Database,
    database_url: str,
    task_queue: str,
    tmp_path: Path,
) -> None:
    local = kind == "local"
    # Regular activities: chunks of 50 jobs on one lane, so one is in flight
    # for a good while (a 5-job chunk takes ~10 ms: SIGTERM could miss it).
    # Local activities: chunks of 5 (at most local_activity_max_jobs).
    reactor.config.batch = BatchConfig(
        chunk_size=5 if local else 50,
        heartbeat_timeout_s=5,
        local_activity_max_jobs=20 if local else 0,
    )
    first = spawn_worker(stack, database_url, task_queue, tmp_path / "w1.log")
    try:
        setup = await reactor.execute_batch({"jobs": creates()})
        await asyncio.wait_for(reactor.wait_for_batch(setup.batch_id), 60)
        # One lane (document): each chunk's 5 jobs run one after the other,
        # so an activity is in flight long enough to be caught running.
        one_lane = [dict(j, document_id=DOCS[0]) for j in item_jobs("g", JOBS, ACTIONS)]
        result = await reactor.execute_batch({"jobs": one_lane})
        handle = reactor.client.get_workflow_handle(workflow_id_for(result.batch_id))

        async def activity_running() -> bool:
            if await count_global_ops(db) < 40:
                return False
            if local:  # local activities are not pending activities of the workflow
                return True
            desc = await handle.describe()
            return any(
                a.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                for a in desc.raw_description.pending_activities
            )

        await wait_until(activity_running, 60, "the first worker to be running an activity")
        written_at_term = await count_global_ops(db)
        term_at = time.time()
        first.send_signal(signal.SIGTERM)
        rc = await asyncio.to_thread(first.wait, GRACE_S + 15)
        exited_after = time.time() - term_at
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    log = (tmp_path / "w1.log").read_text()
    assert rc == 0, log[-3000:]
    assert exited_after < GRACE_S + 15
    assert "draining" in log

    # It stopped polling: nothing moves without a worker.
    written_at_exit = await count_global_ops(db)
    assert written_at_term < JOBS * ACTIONS, (
        "the batch finished before SIGTERM; the test proves nothing"
    )
    if not local:
        assert written_at_exit < JOBS * ACTIONS, "the draining worker kept taking new work"
    # (A local activity runs inside the worker's open workflow task, which
    # goes on scheduling the next local chunks: a draining worker finishes
    # them until the batch ends or the grace period cancels them. Here the
    # batch is small enough to end first.)
    await asyncio.sleep(1.5)
    assert await count_global_ops(db) == written_at_exit

    second = spawn_worker(stack, database_url, task_queue, tmp_path / "w2.log")
    try:
        jobs = await asyncio.wait_for(reactor.wait_for_batch(result.batch_id), 120)
    finally:
        second.terminate()
        second.wait(GRACE_S + 15)
    assert [j.status for j in jobs] == [JobStatus.READ_READY] * JOBS
    await assert_log_is_exact(db, JOBS, ACTIONS)
    if local:
        return

    # The history: every apply activity succeeded on its first attempt (so none
    # the first worker had started was cut off and retried), and the first
    # worker completed activities after it got SIGTERM.
    history = await handle.fetch_history()
    started = [
        e.activity_task_started_event_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    bad = [
        e.event_type
        for e in history.events
        if e.event_type
        in (
            EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
            EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
            EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
        )
    ]
    assert started and not bad
    assert all(s.attempt == 1 for s in started), [s.attempt for s in started]
    first_id = f"{first.pid}@"
    drained = [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        and e.activity_task_completed_event_attributes.identity.startswith(first_id)
        and e.event_time.ToDatetime(tzinfo=UTC).timestamp() >= term_at
    ]
    assert drained, "no activity was in flight at SIGTERM"
    by_second = [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        and e.activity_task_completed_event_attributes.identity.startswith(f"{second.pid}@")
    ]
    assert by_second, "the second worker did not take over"
