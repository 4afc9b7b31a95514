"""What must hold after any fault: every job of the batch ended, each lane's
indices run 0..n-1 with none twice, and each successful job's operations are
in the log exactly once, where its ledger row and the workflow say.

One check for the fault tests (tests/test_faults.py) and the stress runner
(bench/stress.py): `check_batch_log` gathers every violation into a
LogReport, which counts them as lost, duplicated and stuck jobs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import asyncpg
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from reactor.domain.jobs import JobStatus, OperationSpan, job_id_for, workflow_id_for
from reactor.domain.workflow_io import BatchSummary, JobView

# Per lane: a lane is contiguous when its indices are exactly 0..n-1.
LANES = """
SELECT document_id, scope, branch,
       count(*) AS n, count(DISTINCT idx) AS distinct_n, min(idx) AS lo, max(idx) AS hi
FROM reactor_operations GROUP BY document_id, scope, branch
"""
# The batch's operations, per job (job ids are '<batch_id>:<index>').
BATCH_OPERATIONS = """
SELECT id, document_id, scope, branch, idx, job_id, action->>'id' AS action_id
FROM reactor_operations WHERE starts_with(job_id, $1)
"""
BATCH_LEDGER = """
SELECT job_id, status, coordinates FROM reactor_applied_jobs WHERE starts_with(job_id, $1)
"""
VIEWS_PAGE = 1000


@dataclass
class LogReport:
    jobs: int
    stuck: int = 0  # not READ_READY or FAILED (or the batch did not finish)
    failed: int = 0  # ended FAILED
    lost: int = 0  # successful jobs whose operations are missing or misplaced
    duplicated: int = 0  # operations written more than once
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.stuck or self.lost or self.duplicated or self.problems)

    def note(self, problem: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(problem)

    def assert_exact(self, *, failed_allowed: int = 0) -> None:
        assert self.ok and self.failed <= failed_allowed, self.describe()

    def describe(self) -> str:
        head = (
            f"{self.jobs} jobs: {self.stuck} stuck, {self.failed} failed, {self.lost} lost, "
            f"{self.duplicated} duplicated"
        )
        return "\n".join([head, *self.problems])


async def batch_views(client: Client, batch_id: str, timeout: float) -> list[JobView] | None:
    """The finished batch's job views, waiting up to `timeout` seconds for the
    workflow to close; None if it did not. Outages of the Temporal server
    while waiting are waited out."""
    handle: WorkflowHandle[object, BatchSummary] = client.get_workflow_handle(
        workflow_id_for(batch_id), result_type=BatchSummary
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    summary: BatchSummary | None = None
    while summary is None:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return None
        try:
            summary = await asyncio.wait_for(handle.result(), remaining)
        except TimeoutError:
            return None
        except RPCError:  # the server is restarting
            await asyncio.sleep(0.5)
    if summary.jobs is not None:
        return summary.jobs
    views: list[JobView] = []
    while len(views) < summary.total:
        page = await handle.query("jobs", args=[len(views), VIEWS_PAGE], result_type=list[JobView])
        if not page:
            break
        views.extend(page)
    return views


async def check_batch_log(
    conn: asyncpg.Connection,
    batch_id: str,
    views: list[JobView] | None,
    *,
    total: int,
    actions: dict[int, int],
) -> LogReport:
    """`views`: the finished workflow's job views (None: it did not finish);
    `actions`: how many actions each job index carries."""
    report = LogReport(jobs=total)
    if views is None:
        report.stuck = total
        report.note(f"batch {batch_id} did not finish")
        views = []
    elif len(views) != total:
        report.note(f"batch {batch_id}: {len(views)} job views for {total} jobs")

    await _check_lanes(conn, report)
    prefix = f"{batch_id}:"
    ops = await conn.fetch(BATCH_OPERATIONS, prefix)
    ledger = {r["job_id"]: r for r in await conn.fetch(BATCH_LEDGER, prefix)}
    by_job: dict[str, list[asyncpg.Record]] = {}
    for op in ops:
        by_job.setdefault(op["job_id"], []).append(op)
    action_ids: dict[str, int] = {}
    for op in ops:
        action_ids[op["action_id"]] = action_ids.get(op["action_id"], 0) + 1
    report.duplicated += sum(n - 1 for n in action_ids.values() if n > 1)
    if any(n > 1 for n in action_ids.values()):
        report.note("an action was written as more than one operation")

    for view in views:
        job_id = job_id_for(batch_id, view.index)
        written = by_job.get(job_id, [])
        if view.status is JobStatus.FAILED:
            report.failed += 1
            if written:
                report.lost += 1
                report.note(f"{job_id} FAILED ({view.error}) but wrote {len(written)} operations")
            continue
        if view.status is not JobStatus.READ_READY:
            report.stuck += 1
            report.note(f"{job_id} ended {view.status}")
            continue
        if not _job_exact(job_id, view, written, ledger.get(job_id), actions[view.index], report):
            report.lost += 1
    return report


async def _check_lanes(conn: asyncpg.Connection, report: LogReport) -> None:
    for lane in await conn.fetch(LANES):
        if lane["n"] != lane["distinct_n"]:
            report.duplicated += lane["n"] - lane["distinct_n"]
            report.note(f"lane {tuple(lane[:3])}: an index is used twice")
        if lane["lo"] != 0 or lane["hi"] != lane["distinct_n"] - 1:
            report.note(
                f"lane {tuple(lane[:3])}: indices {lane['lo']}..{lane['hi']} "
                f"for {lane['distinct_n']} operations"
            )


def _job_exact(
    job_id: str,
    view: JobView,
    written: list[asyncpg.Record],
    ledger: asyncpg.Record | None,
    expected: int,
    report: LogReport,
) -> bool:
    """The job's operations: as many as its actions, once each, exactly at
    the coordinates the workflow and the ledger give."""
    if len(written) != expected:
        report.note(f"{job_id}: {len(written)} operations for {expected} actions")
        return False
    if ledger is None or ledger["status"] != "applied":
        report.note(f"{job_id}: READ_READY without an 'applied' ledger row")
        return False
    raw = ledger["coordinates"]
    in_ledger = _positions(
        OperationSpan.model_validate(c) for c in (json.loads(raw) if isinstance(raw, str) else raw)
    )
    in_view = _positions(view.coordinates)
    found = {(op["document_id"], op["scope"], op["branch"], op["idx"]) for op in written}
    if not (in_ledger == in_view == found):
        report.note(
            f"{job_id}: operations at {sorted(found)[:2]}…, ledger says {sorted(in_ledger)[:2]}…, "
            f"workflow says {sorted(in_view)[:2]}…"
        )
        return False
    return True


def _positions(spans: Iterable[OperationSpan]) -> set[tuple[str, str, str, int]]:
    return {
        (c.document_id, c.scope, c.branch, c.operation_index)
        for span in spans
        for c in span.coordinates()
    }
