"""Throughput floors for bench/throughput.py: the same jobs without the parts
the reactor adds, run against the same PostgreSQL in the same run, so the
reactor's jobs/s can be read against what the machine does without them.

- **in-process**: the reactor's own write path with no Temporal and no
  worker process: `plan_batch` per batch, then `JobApplier.commit` for every
  job (one transaction per job, reducers, a state hash per operation, the
  document view), in this process on the bench's pool. Jobs on one document
  run in submission order, at most 8 jobs in flight (the apply activity's
  default). This is the "in-process reactor" the issue compares against.
- **raw PostgreSQL**: only the jobs' operation rows, one INSERT transaction
  per job on 8 connections, into a scratch copy of reactor_operations with
  the same indexes: no reducer, no hash, no document view, no ledger.
- **no-op workflows**: one workflow that does nothing per batch of the phase,
  all started at once and awaited, on an in-process worker: Temporal's fixed
  cost for that many batches with nothing inside.

Each floor's CPU is measured like a phase's (PostgreSQL and this process).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from _noop import NoopWorkflow
from _stack import BenchStack
from _tables import Table
from temporalio.worker import Worker

from reactor.application.apply import JobApplier
from reactor.application.write_cache import WriteCache
from reactor.domain.batch import BatchRequest, ExistingDocument, PlannedJob, plan_batch
from reactor.storage.database import Database

IN_FLIGHT = 8  # the apply activity's default (BatchActivities.max_parallel)
POOL = 12  # the worker's pool (reactor/runtime/worker.py)
SCRATCH = "bench_floor_operations"

Job = dict[str, Any]


@dataclass
class FloorResult:
    name: str
    jobs: int
    operations: int
    wall_s: float
    cpu: dict[str, float]

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.wall_s

    @property
    def operations_per_s(self) -> float:
        return self.operations / self.wall_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "floor": self.name,
            "jobs": self.jobs,
            "operations": self.operations,
            "wall_s": self.wall_s,
            "jobs_per_s": self.jobs_per_s,
            "operations_per_s": self.operations_per_s,
            "cpu_s": self.cpu,
        }


COLUMNS = [
    "phase",
    "reactor ops/s",
    "in-process ops/s",
    "raw PostgreSQL ops/s",
    "no-op workflows s (n)",
    "reactor ÷ in-process",
    "reactor CPU µs/op",
    "in-process CPU µs/op",
    "raw PG CPU µs/op",
]
CAPTION = (
    "in-process = plan_batch + JobApplier.commit in the bench process, no Temporal "
    "(one transaction per job, reducers, a state hash per operation, the document "
    "view), at most 8 jobs in flight per batch, batches concurrent; raw PostgreSQL = "
    "only the operation rows, one INSERT transaction per job, 8 connections; no-op "
    "workflows = one empty workflow per batch, all at once. Each on fresh documents "
    "preloaded like the phase's, run right after the phase's run. CPU µs/op: every "
    "process of the stack for the reactor; this process + PostgreSQL for the floors."
)


def table_row(phase: dict[str, Any], floors: dict[str, Any]) -> list[Any]:
    """`phase`: a throughput phase's JSON; `floors`: its floors' JSON."""
    inproc, raw, noop = floors["in_process"], floors["raw_postgres"], floors["noop_workflows"]
    ops = phase["operations_per_s"]
    return [
        phase["phase"],
        ops,
        inproc["operations_per_s"],
        raw["operations_per_s"],
        f"{noop['wall_s']:.2f} ({noop['jobs']})",
        f"{ops / inproc['operations_per_s']:.2f}×",
        _us_per_op(
            phase["cpu_s"], ("worker", "temporal", "postgres", "bench"), phase["operations"]
        ),
        _us_per_op(inproc["cpu_s"], ("bench", "postgres"), inproc["operations"]),
        _us_per_op(raw["cpu_s"], ("bench", "postgres"), raw["operations"]),
    ]


def table(phases: list[dict[str, Any]], floors: list[dict[str, Any]], repeated: bool) -> Table:
    """From the JSON forms of the phases' median runs and of their floors."""
    by_phase = {p["phase"]: p for p in phases}
    return Table(
        "Floors: the same jobs without Temporal, and without the reactor"
        + (" (median runs)" if repeated else ""),
        COLUMNS,
        [table_row(by_phase[f["phase"]], f) for f in floors],
        caption=CAPTION,
    )


def _us_per_op(cpu: dict[str, float], parts: tuple[str, ...], operations: int) -> float:
    return 1e6 * sum(cpu.get(p, 0.0) for p in parts) / operations


async def _timed(
    stack: BenchStack, name: str, jobs: int, operations: int, work: Callable[[], Awaitable[None]]
) -> FloorResult:
    stack.cpu.start()
    start = time.perf_counter()
    await work()
    wall = time.perf_counter() - start
    return FloorResult(name, jobs, operations, wall, stack.cpu.stop())


async def _in_lanes(jobs: list[Any], lane_of: Callable[[Any], str], apply: Any) -> None:
    """Runs `apply(job)` for every job: one document's jobs in order, at most
    IN_FLIGHT jobs at a time overall."""
    lanes: dict[str, list[Any]] = {}
    for job in jobs:
        lanes.setdefault(lane_of(job), []).append(job)
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def lane(queue: list[Any]) -> None:
        for job in queue:
            async with gate:
                await apply(job)

    await asyncio.gather(*(lane(q) for q in lanes.values()))


async def in_process(
    stack: BenchStack, batches: list[list[Job]], documents: list[str], tag: str
) -> FloorResult:
    """`documents` must exist (as todo lists) and hold nothing but what the
    phase's own jobs would add."""
    reactor = stack.reactor
    db = await Database.connect(stack.database_url, max_size=POOL)
    applier = JobApplier(db, reactor.registry, cache=WriteCache())
    existing = {d: ExistingDocument("powerhouse/todo-list") for d in documents}
    operations = sum(len(j["actions"]) for b in batches for j in b)
    failures: list[str] = []

    async def work() -> None:
        async def one_batch(number: int, batch: list[Job]) -> None:
            request = BatchRequest.model_validate(
                {"batch_id": f"floor-{tag}-{number}", "jobs": batch}
            )
            plan = plan_batch(request, reactor.registry, existing)

            async def apply(job: PlannedJob) -> None:
                committed = await applier.commit(plan.batch_id, job)
                if not committed.outcome.ok:
                    failures.append(f"{job.key}: {committed.outcome.error}")

            await _in_lanes(plan.jobs, lambda j: j.document_id, apply)

        # Batches one after another per document would serialize them; the
        # reactor runs batches concurrently, so do the floor.
        await asyncio.gather(*(one_batch(n, b) for n, b in enumerate(batches)))

    try:
        result = await _timed(stack, "in-process", sum(map(len, batches)), operations, work)
    finally:
        await db.close()
    if failures:
        raise RuntimeError(f"in-process floor: {len(failures)} jobs failed: {failures[:3]}")
    return result


async def raw_postgres(stack: BenchStack, batches: list[list[Job]], tag: str) -> FloorResult:
    """Every job's operation rows, prepared before the clock starts, each job
    one autocommitted INSERT."""
    now = datetime.now(UTC)
    next_index: dict[str, int] = {}
    rows: list[tuple[str, str, list[str], list[int], list[str], list[str]]] = []
    for b in batches:
        for job in b:
            doc = job["document_id"]
            first = next_index.get(doc, 0)
            n = len(job["actions"])
            next_index[doc] = first + n
            actions = [
                orjson.dumps({**a, "id": str(uuid.uuid4()), "timestamp": now.isoformat()}).decode()
                for a in job["actions"]
            ]
            rows.append(
                (
                    f"{tag}-{job['key']}",
                    doc,
                    [str(uuid.uuid4()) for _ in range(n)],
                    list(range(first, first + n)),
                    [hashlib.sha256(a.encode()).hexdigest() for a in actions],
                    actions,
                )
            )
    operations = sum(len(r[2]) for r in rows)
    db = await Database.connect(stack.database_url, max_size=POOL)
    pool = db.pool
    async with pool.acquire() as conn:
        await conn.execute(f"DROP TABLE IF EXISTS {SCRATCH}")
        await conn.execute(f"CREATE TABLE {SCRATCH} (LIKE reactor_operations INCLUDING ALL)")
    insert = f"""
        INSERT INTO {SCRATCH} (tx_id, id, document_id, scope, branch, idx, skip, ts, hash, action, job_id)
        SELECT pg_current_xact_id(), o.id, $2, 'global', 'main', o.idx, 0, $3, o.hash, o.action::jsonb, $1
        FROM unnest($4::text[], $5::int[], $6::text[], $7::text[]) AS o(id, idx, hash, action)
    """

    async def write(row: tuple[str, str, list[str], list[int], list[str], list[str]]) -> None:
        job_id, doc, ids, indices, hashes, actions = row
        async with pool.acquire() as conn:
            await conn.execute(insert, job_id, doc, now, ids, indices, hashes, actions)

    try:
        return await _timed(
            stack, "raw PostgreSQL", len(rows), operations, lambda: _in_lanes(rows, _doc, write)
        )
    finally:
        async with pool.acquire() as conn:
            await conn.execute(f"DROP TABLE IF EXISTS {SCRATCH}")
        await db.close()


def _doc(row: tuple[str, str, Any, Any, Any, Any]) -> str:
    return row[1]


async def noop_workflows(stack: BenchStack, batches: int, tag: str) -> FloorResult:
    client = stack.reactor.client
    queue = f"bench-floor-{tag}-{uuid.uuid4().hex[:8]}"

    async def work() -> None:
        await asyncio.gather(
            *(
                client.execute_workflow(NoopWorkflow.run, id=f"{queue}-{n}", task_queue=queue)
                for n in range(batches)
            )
        )

    async with Worker(client, task_queue=queue, workflows=[NoopWorkflow]):
        return await _timed(stack, "no-op workflows", batches, 0, work)
