"""Where PostgreSQL's CPU per job goes: the one statement that writes a job
(reactor/storage/job_write.py), next to each of its parts run alone and to
a bare `SELECT 1`.

    python bench/write_cost.py [--json] [--jobs 2000] [--repeat 3]

Every variant runs `--jobs` single-action jobs over 20 documents (100 per
document, so the todo-list state grows from 0 to 99 items, as in phase b of
bench/throughput.py), one autocommitted statement per job on 8 connections,
and reports PostgreSQL's CPU (the postmaster and its backends) per job. The
parts are the write statement's CTEs written out as statements of their own
(the operation rows, the document view upsert, the header update, the
ledger row, the lane lock): they are approximations kept here, not the code
that runs, so the "full" row is the one to trust. Each part alone pays a
statement and a commit of its own, so the parts add up to more than the
whole; `SELECT 1` shows what a round trip without a write costs.

Only PostgreSQL runs: pgserver, or REACTOR_DATABASE_URL pointing at a
server of your own on this machine (its CPU is read from its processes),
whose database gets the reactor's tables.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _results
import asyncpg
import orjson
import psutil
from _metering import tree_cpu
from _results import log
from _stack import main_guard, parse_args
from _tables import Table

from reactor.runtime.stack import EmbeddedStack
from reactor.storage.job_write import LOCK, write_statement
from reactor.storage.migrate import migrate

DOCS = 20
CONNECTIONS = 8
HASH = "0" * 64

OPERATION_ROWS = """
INSERT INTO reactor_operations
    (tx_id, id, document_id, scope, branch, idx, skip, ts, hash, action, job_id)
SELECT pg_current_xact_id(), o.id, $1, 'global', 'main', o.idx, 0, o.ts, o.hash, o.action::jsonb, $2
FROM unnest($3::text[], $4::int[], $5::timestamptz[], $6::text[], $7::text[])
     AS o(id, idx, ts, hash, action)
"""
VIEW_UPSERT = """
INSERT INTO reactor_document_states (document_id, scope, branch, revision, hash, state)
SELECT $1, 'global', 'main', $2, $3, $4::text::json
ON CONFLICT (document_id, scope, branch)
DO UPDATE SET revision = EXCLUDED.revision, hash = EXCLUDED.hash, state = EXCLUDED.state
"""
HEADER = """
UPDATE reactor_documents SET modified_at = greatest(modified_at, $2), name = coalesce(NULL, name)
WHERE id = $1 AND NOT deleted
"""
LEDGER = """
INSERT INTO reactor_applied_jobs (job_id, status, coordinates, error, applied_by)
SELECT $1, 'applied', $2::text::jsonb, NULL, 'bench'
"""


def _state(items: int) -> str:
    listed = [{"id": f"item-{i}", "text": f"item {i}", "checked": False} for i in range(items)]
    stats = {"total": items, "checked": 0, "unchecked": items}
    return orjson.dumps({"items": listed, "stats": stats}).decode()


def _arguments(variant: str, tag: str, jobs: int) -> list[tuple[Any, ...]]:
    """One argument tuple per job; the documents are `tag`-dNN."""
    now = datetime.now(UTC)
    rows: list[tuple[Any, ...]] = []
    for j in range(jobs):
        doc, revision = f"{tag}-d{j % DOCS:02d}", j // DOCS
        job_id = f"{tag}-job-{j}"
        op_id = str(uuid.uuid4())
        item = {"id": f"item-{revision}", "text": f"item {revision}"}
        action = orjson.dumps(
            {"id": op_id, "type": "ADD_TODO_ITEM", "input": item, "timestamp": now.isoformat()}
        ).decode()
        coordinates = orjson.dumps([{"document_id": doc, "index": revision, "count": 1}]).decode()
        if variant == "full":
            rows.append(
                (
                    doc,
                    "global",
                    "main",
                    job_id,
                    [op_id],
                    [revision],
                    [now],
                    [HASH],
                    [action],
                    revision + 1,
                    HASH,
                    _state(revision + 1),
                    now,
                    None,
                    True,
                    coordinates,
                    "bench",
                    f"{doc}/main",
                )
            )
        elif variant == "operation rows":
            rows.append((doc, job_id, [op_id], [revision], [now], [HASH], [action]))
        elif variant == "view upsert":
            rows.append((doc, revision + 1, HASH, _state(revision + 1)))
        elif variant == "header":
            rows.append((doc, now))
        elif variant == "ledger":
            rows.append((job_id, coordinates))
        elif variant == "lane lock":
            rows.append((f"{doc}/main",))
        else:
            rows.append(())
    return rows


SQL = {
    "full": write_statement(False, False),
    "operation rows": OPERATION_ROWS,
    "view upsert": VIEW_UPSERT,
    "header": HEADER,
    "ledger": LEDGER,
    "lane lock": LOCK,  # the locked path's own statement
    "SELECT 1": "SELECT 1",
}
VARIANTS = list(SQL)


async def _create_documents(pool: asyncpg.Pool, tag: str) -> None:
    await pool.executemany(
        "INSERT INTO reactor_documents (id, document_type, slug, name, created_at, modified_at) "
        "VALUES ($1, 'powerhouse/todo-list', NULL, '', now(), now())",
        [(f"{tag}-d{d:02d}",) for d in range(DOCS)],
    )


async def _run(
    pool: asyncpg.Pool, postmaster: int, variant: str, tag: str, jobs: int
) -> dict[str, float]:
    await _create_documents(pool, tag)
    queue = list(reversed(_arguments(variant, tag, jobs)))
    sql = SQL[variant]

    async def connection() -> None:
        async with pool.acquire() as conn:
            while queue:
                await conn.fetch(sql, *queue.pop())

    pg0, me0, t0 = tree_cpu(postmaster), time.process_time(), time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(CONNECTIONS)))
    wall = time.perf_counter() - t0
    return {
        "postgres_us_per_job": 1e6 * (tree_cpu(postmaster) - pg0) / jobs,
        "client_us_per_job": 1e6 * (time.process_time() - me0) / jobs,
        "jobs_per_s": jobs / wall,
    }


async def _bench(url: str, postmaster: int, jobs: int, repeat: int) -> dict[str, Any]:
    pool = await asyncpg.create_pool(url, min_size=CONNECTIONS, max_size=CONNECTIONS)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            settings = {
                s: await conn.fetchval(f"SHOW {s}") for s in ("fsync", "synchronous_commit")
            }
        runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
        for r in range(repeat):
            for i, v in enumerate(VARIANTS):  # interleaved: a slow spell hits every variant
                tag = f"wc{os.getpid()}-{r}-{i}"
                runs[v].append(await _run(pool, postmaster, v, tag, jobs))
                log.print(f"  {v}: {runs[v][-1]['postgres_us_per_job']:.0f} µs/job")
    finally:
        await pool.close()
    medians = {
        v: {k: statistics.median(run[k] for run in rs) for k in rs[0]} for v, rs in runs.items()
    }
    return {"settings": settings, "jobs": jobs, "repeat": repeat, "variants": medians, "runs": runs}


def tables(result: dict[str, Any]) -> list[Table]:
    """The table of a result (this script's JSON)."""
    floor = result["variants"]["SELECT 1"]["postgres_us_per_job"]
    return [
        Table(
            f"PostgreSQL CPU per job, {result['jobs']:,} jobs on {CONNECTIONS} connections, "
            f"median of {result['repeat']} "
            f"(synchronous_commit={result['settings']['synchronous_commit']})",
            ["statement", "PostgreSQL µs/job", "above SELECT 1", "client µs/job", "jobs/s"],
            [
                [
                    v,
                    m["postgres_us_per_job"],
                    m["postgres_us_per_job"] - floor,
                    m["client_us_per_job"],
                    m["jobs_per_s"],
                ]
                for v, m in result["variants"].items()
            ],
            caption="full = the reactor's write statement; the others are its parts, each "
            "alone, each with its own commit; SELECT 1 = a round trip that writes nothing",
        )
    ]


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per variant and run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant (median shown)")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], _options)
    folder = Path(tempfile.mkdtemp(prefix="rxbench-write-cost-"))
    # PostgreSQL alone: the dev server is never started.
    stack = EmbeddedStack.from_env(folder)
    try:
        if stack.postgres is None:
            url = stack.server_url
            postmaster = psutil.Process(asyncio.run(_server_pid(url))).ppid()
        else:
            log.print("starting PostgreSQL (pgserver)…")
            url = stack.start_postgres()
            found = stack.postgres_pid
            if found is None:
                raise RuntimeError("pgserver started but no postmaster runs")
            postmaster = found
        result = asyncio.run(_bench(url, postmaster, args.jobs, args.repeat))
    finally:
        stack.stop()
        shutil.rmtree(folder, ignore_errors=True)
    payload = {
        "bench": "write_cost",
        "machine": _results.machine(),
        "code": _results.code_info(),
        **result,
    }
    _results.show(tables(payload))
    if args.json:
        _results.emit_json(payload)


async def _server_pid(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        pid: int = await conn.fetchval("SELECT pg_backend_pid()")
        return pid
    finally:
        await conn.close()


if __name__ == "__main__":
    main_guard(main)
