"""Faults injected into a real embedded stack mid-batch, for the fault tests
(tests/test_faults.py) and the stress runner (bench/stress.py).

A FaultStack owns its PostgreSQL and Temporal dev server (it stops and kills
them, so it never shares them), and its worker processes. `run_fault` runs one
batch of `jobs` jobs, one per document, through one fault and checks the log
afterwards (tests/support/log_checks.py)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import Client

from reactor.api.builder import ReactorBuilder
from reactor.api.reactor import Reactor
from reactor.domain.jobs import workflow_id_for
from reactor.domain.workflow_io import BatchConfig, JobView
from reactor.models import BUILTIN_MODELS
from reactor.runtime.embedded import EmbeddedPostgres, EmbeddedTemporal, free_port
from reactor.runtime.stack import create_database, spawn_worker, wait_polling, worker_env
from tests.support.log_checks import LogReport, batch_views, check_batch_log

WORKER_KILL = "worker-kill"
POSTGRES_RESTART = "postgres-restart"
TEMPORAL_RESTART = "temporal-restart"
FAULTS = (WORKER_KILL, POSTGRES_RESTART, TEMPORAL_RESTART)

# Chunks of more than 100 jobs run as regular, heartbeating activities (at
# most local_activity_max_jobs run as local ones): a killed worker's chunk is
# noticed by its heartbeat timeout and re-run by another worker.
FAULT_BATCH = BatchConfig(
    chunk_size=150, max_parallel_chunks=2, heartbeat_timeout_s=3, local_activity_max_jobs=100
)
APPLIED = "SELECT count(*) FROM reactor_applied_jobs WHERE starts_with(job_id, $1)"


class FaultStack:
    """PostgreSQL and the Temporal dev server under `folder`, restartable on
    the same state (data directory, socket, state file, port)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.pg = EmbeddedPostgres(folder / "pg")
        self.temporal = EmbeddedTemporal(folder / "temporal", port=free_port(), ui=False)
        self.server_url = ""
        self.address = ""

    def start(self) -> None:
        self.server_url = self.pg.start()
        self.address = self.temporal.start()

    def stop(self) -> None:
        self.temporal.stop()
        self.pg.stop()

    def stop_postgres(self) -> None:
        self.pg.stop(mode="fast")

    def start_postgres(self) -> None:
        url = self.pg.start()
        assert url == self.server_url, f"PostgreSQL came back at {url}, not {self.server_url}"

    def kill_temporal(self) -> None:
        self.temporal.kill()

    def start_temporal(self) -> None:
        self.temporal = EmbeddedTemporal(
            self.folder / "temporal", port=self.temporal.port, ui=False
        )
        self.temporal.start()

    async def new_database(self) -> str:
        return await create_database(self.server_url, "f_")


class Workers:
    """`python worker.py` processes on one database and task queue."""

    def __init__(self, stack: FaultStack, database_url: str, task_queue: str, logs: Path):
        self.stack = stack
        self.database_url = database_url
        self.task_queue = task_queue
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self) -> subprocess.Popen[bytes]:
        env = worker_env(
            self.database_url,
            self.stack.address,
            self.task_queue,
            home=self.stack.folder / "home",
        )
        log = self.logs / f"worker-{len(self.procs)}.log"
        # Its own session: a Ctrl-C in the terminal is for the runner.
        proc = spawn_worker(env, log, cwd=self.stack.folder, own_session=True)
        self.procs.append(proc)
        return proc

    async def polling(self, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
        log = self.logs / f"worker-{self.procs.index(proc)}.log"
        await wait_polling(log, timeout, proc)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass
class FaultRun:
    fault: str | None
    jobs: int
    actions: int
    batch_id: str
    database_url: str
    views: list[JobView] | None
    injected: bool  # the fault hit the batch mid-flight
    applied_at_fault: int
    recover_s: float | None  # fault injected -> first job committed once it was over
    wall_s: float
    report: LogReport
    regular_chunk_in_flight: bool = False  # a heartbeating chunk was running at the fault
    max_attempt: int = 1  # the highest attempt of any apply activity the server started
    notes: list[str] = field(default_factory=list)


OUTAGE_BEGAN = "database unavailable"
OUTAGE_ENDED = "database reachable again"
TRACEBACK = "Traceback (most recent call last)"


@dataclass(frozen=True)
class OutageLog:
    """What one process's log says about database outages (see
    reactor/observability/outage.py)."""

    began: int
    ended: int
    tracebacks: int

    @classmethod
    def of(cls, lines: Iterable[str]) -> OutageLog:
        said = list(lines)
        return cls(
            began=sum(OUTAGE_BEGAN in line for line in said),
            ended=sum(OUTAGE_ENDED in line for line in said),
            tracebacks=sum(TRACEBACK in line for line in said),
        )


def worker_outage_logs(logs: Path) -> dict[str, OutageLog]:
    """Each worker process's OutageLog, by log file name."""
    return {
        p.name: OutageLog.of(p.read_text(errors="replace").splitlines())
        for p in sorted(logs.glob("worker-*.log"))
    }


def creates(docs: list[str]) -> dict[str, Any]:
    return {
        "jobs": [
            {
                "key": f"create-{d}",
                "document_id": d,
                "scope": "document",
                "actions": [
                    {"type": "CREATE_DOCUMENT", "input": {"document_type": "powerhouse/todo-list"}}
                ],
            }
            for d in docs
        ]
    }


def item_jobs(docs: list[str], actions: int) -> dict[str, Any]:
    return {
        "jobs": [
            {
                "key": f"items-{d}",
                "document_id": d,
                "actions": [
                    {"type": "ADD_TODO_ITEM", "input": {"id": f"{d}-{a}", "text": f"item {a}"}}
                    for a in range(actions)
                ],
            }
            for d in docs
        ]
    }


class Progress:
    """Counts the batch's committed jobs, across PostgreSQL outages."""

    def __init__(self, database_url: str, batch_id: str):
        self.database_url = database_url
        self.prefix = f"{batch_id}:"
        self._conn: asyncpg.Connection | None = None

    async def applied(self) -> int | None:
        """None while the database cannot be reached."""
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self.database_url, timeout=2)
            n: int = await self._conn.fetchval(APPLIED, self.prefix, timeout=2)
            return n
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            if self._conn is not None:
                self._conn.terminate()
            self._conn = None
            return None

    async def until(self, at_least: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while True:
            n = await self.applied()
            if n is not None and n >= at_least:
                return n
            if time.monotonic() > deadline:
                raise TimeoutError(f"{n} jobs committed after {timeout} s, waited for {at_least}")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.terminate()


async def max_activity_attempt(client: Client, batch_id: str) -> int:
    history = await client.get_workflow_handle(workflow_id_for(batch_id)).fetch_history()
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    return max(attempts, default=1)


async def build_reactor(stack: FaultStack, database_url: str, task_queue: str) -> Reactor:
    return await (
        ReactorBuilder()
        .with_document_models(BUILTIN_MODELS)
        .with_database(database_url)
        .with_temporal(stack.address, task_queue=task_queue)
        .with_batch_config(FAULT_BATCH)
        .build()
    )


async def run_fault(
    stack: FaultStack,
    fault: str | None,
    *,
    jobs: int,
    actions: int,
    logs: Path,
    workers: int = 1,
    down_s: float = 2.0,
    finish_timeout: float = 240.0,
) -> FaultRun:
    """One batch through one fault: `jobs` jobs on as many documents, each of
    `actions` actions; the fault (None: none) once a tenth of them committed."""
    if fault is not None and fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
    started = time.monotonic()
    database_url = await stack.new_database()
    task_queue = "tq-" + uuid.uuid4().hex[:10]
    pool = Workers(stack, database_url, task_queue, logs)
    for _ in range(workers):
        pool.spawn()
    reactor = await build_reactor(stack, database_url, task_queue)
    run_id = uuid.uuid4().hex[:6]
    docs = [f"{run_id}-{n}" for n in range(jobs)]
    progress: Progress | None = None
    try:
        for proc in pool.procs:
            await pool.polling(proc)
        setup = await reactor.execute_batch(creates(docs))
        if await batch_views(reactor.client, setup.batch_id, finish_timeout) is None:
            raise TimeoutError("the documents were not created")
        result = await reactor.execute_batch(item_jobs(docs, actions))
        progress = Progress(database_url, result.batch_id)
        await progress.until(max(1, jobs // 10), finish_timeout)
        busy = await running_chunk_pids(reactor.client, result.batch_id)
        at_fault = await progress.applied() or 0
        fault_at = time.monotonic()
        if fault is not None:
            await _inject(fault, stack, pool, down_s, busy)
        finished = asyncio.create_task(batch_views(reactor.client, result.batch_id, finish_timeout))
        recover_s = await _recovered(progress, finished, fault_at, finish_timeout)
        views = await finished
        conn = await asyncpg.connect(database_url)
        try:
            report = await check_batch_log(
                conn,
                result.batch_id,
                views,
                total=jobs,
                actions=dict.fromkeys(range(jobs), actions),
            )
        finally:
            await conn.close()
        return FaultRun(
            fault=fault,
            jobs=jobs,
            actions=actions,
            batch_id=result.batch_id,
            database_url=database_url,
            views=views,
            injected=at_fault < jobs,
            applied_at_fault=at_fault,
            recover_s=recover_s,
            wall_s=time.monotonic() - started,
            report=report,
            regular_chunk_in_flight=bool(busy),
            max_attempt=await max_activity_attempt(reactor.client, result.batch_id),
        )
    finally:
        if progress is not None:
            await progress.close()
        await reactor.close()
        await asyncio.to_thread(pool.stop)


async def _recovered(
    progress: Progress, finished: asyncio.Task[Any], fault_at: float, timeout: float
) -> float | None:
    """Seconds from the fault to the first progress once it is over: a job
    committed, or the batch closing (its jobs may all have committed while
    the Temporal server was down). None if neither came within `timeout`."""
    back = await progress.applied()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = await progress.applied()
        if finished.done() or (now is not None and back is not None and now > back):
            return time.monotonic() - fault_at
        if back is None:
            back = now
        await asyncio.sleep(0.02)
    return None


async def running_chunk_pids(client: Client, batch_id: str) -> set[int]:
    """Pids of the workers running the batch's started activities (a worker's
    identity is `pid@host`)."""
    desc = await client.get_workflow_handle(workflow_id_for(batch_id)).describe()
    pids = set()
    for a in desc.raw_description.pending_activities:
        pid, _, _ = a.last_worker_identity.partition("@")
        if a.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED and pid.isdigit():
            pids.add(int(pid))
    return pids


async def _inject(
    fault: str, stack: FaultStack, pool: Workers, down_s: float, busy: set[int]
) -> None:
    if fault == WORKER_KILL:
        alive = [p for p in pool.procs if p.poll() is None]
        # The one running a chunk, so that the kill costs a chunk.
        victim = next((p for p in alive if p.pid in busy), alive[0])
        victim.kill()
        await asyncio.to_thread(victim.wait)
        await pool.polling(pool.spawn())
    elif fault == POSTGRES_RESTART:
        await asyncio.to_thread(stack.stop_postgres)
        await asyncio.sleep(down_s)
        await asyncio.to_thread(stack.start_postgres)
    else:
        await asyncio.to_thread(stack.kill_temporal)
        await asyncio.sleep(down_s)
        await asyncio.to_thread(stack.start_temporal)
