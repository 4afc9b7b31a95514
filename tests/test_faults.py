"""The fault suite: a batch of 300 jobs (one per document, chunks of 150, so
regular heartbeating activities) goes through one fault each, against real
services this module starts and then kills or restarts:

- a worker SIGKILLed while a regular chunk is mid-flight, then a second one;
- the embedded PostgreSQL stopped and started again (same data, same socket);
- the Temporal dev server SIGKILLed and restarted on its state file (same port).

After each: every job ended READ_READY, each lane's indices run 0..n-1 once,
and each job's operations are in the log exactly once, where the ledger and
the workflow say (tests/support/log_checks.py)."""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from reactor.domain.workflow_io import JobView
from reactor.observability.outage import OUTAGE, OUTAGE_LOGGERS
from tests.support.faults import (
    POSTGRES_RESTART,
    TEMPORAL_RESTART,
    WORKER_KILL,
    FaultRun,
    FaultStack,
    OutageLog,
    build_reactor,
    run_fault,
    worker_outage_logs,
)
from tests.support.log_checks import LogReport, check_batch_log

JOBS, ACTIONS = 300, 30


@pytest.fixture(scope="module")
def fault_stack() -> Iterator[FaultStack]:
    """Services of this module alone: the tests kill them."""
    folder = Path(tempfile.mkdtemp(prefix="rxf"))
    stack = FaultStack(folder)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(folder, ignore_errors=True)


def assert_went_through_the_fault(run: FaultRun) -> None:
    assert run.injected, f"the batch had finished before the fault ({run.applied_at_fault} jobs)"
    assert run.recover_s is not None, "no job committed after the fault"
    run.report.assert_exact()


async def test_sigkill_of_a_worker_mid_regular_chunk(
    fault_stack: FaultStack, tmp_path: Path
) -> None:
    run = await run_fault(fault_stack, WORKER_KILL, jobs=JOBS, actions=ACTIONS, logs=tmp_path)
    assert run.regular_chunk_in_flight, "no heartbeating chunk was running when the worker died"
    # The dead worker's chunk was noticed by its heartbeat and run again.
    assert run.max_attempt >= 2
    assert_went_through_the_fault(run)


async def test_postgres_stopped_and_started_mid_batch(
    fault_stack: FaultStack,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # This process hosts no worker: the client Reactor that run_fault builds
    # must put the outage filter on its loggers itself.
    for name in OUTAGE_LOGGERS:
        logging.getLogger(name).removeFilter(OUTAGE)
    monkeypatch.setattr(OUTAGE, "in_outage", False)
    caplog.set_level(logging.WARNING)
    run = await run_fault(fault_stack, POSTGRES_RESTART, jobs=JOBS, actions=ACTIONS, logs=tmp_path)
    assert_went_through_the_fault(run)
    # The outage is one line when it starts and one when it ends, with no
    # traceback, in the worker and in the client (its pool and LISTEN
    # connection reconnect through it).
    workers = worker_outage_logs(tmp_path)
    assert workers == {"worker-0.log": OutageLog(began=1, ended=1, tracebacks=0)}
    # A client learns the outage ended when it next reaches the database:
    # its LISTEN connection may still be backing off when the batch closes.
    # Any new pool connection of the process ends it, once.
    client_only = await build_reactor(fault_stack, run.database_url, "tq-" + uuid.uuid4().hex)
    await client_only.close()
    formatter = logging.Formatter()
    client = OutageLog.of(line for r in caplog.records for line in formatter.format(r).splitlines())
    assert client == OutageLog(began=1, ended=1, tracebacks=0), caplog.text


async def test_temporal_killed_and_restarted_on_its_state_mid_batch(
    fault_stack: FaultStack, tmp_path: Path
) -> None:
    run = await run_fault(fault_stack, TEMPORAL_RESTART, jobs=JOBS, actions=ACTIONS, logs=tmp_path)
    assert_went_through_the_fault(run)


async def test_the_log_check_finds_lost_misplaced_and_duplicated_operations(
    fault_stack: FaultStack, tmp_path: Path
) -> None:
    """The check above can fail: a clean run passes it, then each kind of
    damage done to that run's log is reported."""
    run = await run_fault(fault_stack, None, jobs=10, actions=3, logs=tmp_path)
    run.report.assert_exact()
    job = f"{run.batch_id}:4"
    conn = await asyncpg.connect(run.database_url)
    try:

        async def check() -> LogReport:
            return await check_batch_log(
                conn, run.batch_id, run.views, total=10, actions=dict.fromkeys(range(10), 3)
            )

        # The same action written again, at the lane's next index.
        await conn.execute(DUPLICATE_LAST_OPERATION, job)
        report = await check()
        assert report.duplicated == 1 and report.lost == 1, report.describe()
        await conn.execute("DELETE FROM reactor_operations WHERE id LIKE 'copy-%'")
        assert (await check()).ok
        # An operation gone: the job lost it and its lane has a gap.
        await conn.execute(
            "DELETE FROM reactor_operations WHERE job_id = $1 AND idx = "
            "(SELECT min(idx) FROM reactor_operations WHERE job_id = $1)",
            job,
        )
        report = await check()
        assert report.lost == 1 and any("indices" in p for p in report.problems), report.describe()
    finally:
        await conn.close()
    # A batch that never finished: every job is stuck.
    stuck = await check_batch_log_for(run, views=None)
    assert stuck.stuck == 10


async def check_batch_log_for(run: FaultRun, views: list[JobView] | None) -> LogReport:
    conn = await asyncpg.connect(run.database_url)
    try:
        return await check_batch_log(
            conn, run.batch_id, views, total=run.jobs, actions=dict.fromkeys(range(run.jobs), 3)
        )
    finally:
        await conn.close()


DUPLICATE_LAST_OPERATION = """
INSERT INTO reactor_operations
    (tx_id, id, document_id, scope, branch, idx, skip, ts, hash, action, job_id)
SELECT pg_current_xact_id(), 'copy-' || id, document_id, scope, branch, idx + 1, skip, ts, hash,
       action, job_id
FROM reactor_operations WHERE job_id = $1 ORDER BY idx DESC LIMIT 1
"""
