"""Read cost against log length: one todo-list document grown to 1,000,
10,000 and 100,000 global operations.

    python bench/read_cost.py [--json] [--sizes 1000,10000,100000]

The document is created through the reactor (Temporal), then grown by
applying jobs of 100 actions directly with `JobApplier` (a fresh WriteCache):
the worker's write path minus Temporal orchestration, because growing it to
100k operations through Temporal would take too long. The actions alternate
ADD_TODO_ITEM / DELETE_TODO_ITEM of one id, so the state stays at 0-1 items
and only the log grows.

At each size:
- get cold: `reactor.get(doc)` as the first call of a new Reactor (new pool,
  new Temporal client); median of 5 new reactors;
- get warm: 200 calls on one reactor (p50, p99);
- rebuild_state at the head (keyframes: the head is a keyframe, 0 operations
  replayed), at revision N-1 (keyframes: 99 replayed, the worst case with the
  default interval of 100), and without keyframes (all N replayed, once).

rebuild_state(revision=None) finds the head with max(idx), whose plan depends
on the planner's statistics for reactor_operations. Until the table is first
analyzed (autovacuum's next visit after a bulk load) the query scans the
document's whole index range. To show both cases deterministically,
autovacuum is off for reactor_operations during the run: "rebuild head" runs
with a never-analyzed table, and at the last size again after ANALYZE.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import _results
from _results import log
from _stack import BenchStack, main_guard, parse_args, run_bench
from _stats import Summary, mb
from _tables import Table

from reactor.application.apply import JobApplier
from reactor.application.replay import rebuild_state
from reactor.application.write_cache import WriteCache
from reactor.domain.actions import ActionSpec
from reactor.domain.batch import BatchRequest, ExistingDocument, JobRequest, plan_batch
from reactor.domain.jobs import JobStatus

TODO = "powerhouse/todo-list"
DOC = "read-cost-doc"
ACTIONS_PER_JOB = 100
COLD_TRIALS = 5
WARM_CALLS = 200
REBUILD_CALLS = 20


def job_actions(job_no: int) -> list[ActionSpec]:
    specs: list[ActionSpec] = []
    for a in range(ACTIONS_PER_JOB):
        if a % 2 == 0:
            specs.append(
                ActionSpec(type="ADD_TODO_ITEM", input={"id": "x", "text": f"job {job_no}"})
            )
        else:
            specs.append(ActionSpec(type="DELETE_TODO_ITEM", input={"id": "x"}))
    return specs


async def grow(stack: BenchStack, applier: JobApplier, start: int, target: int, tag: str) -> float:
    """Applies jobs until the document has `target` global operations; returns
    the seconds spent in JobApplier.apply."""
    registry = stack.reactor.registry
    existing = {DOC: ExistingDocument(TODO)}
    applying = 0.0
    job_no = start // ACTIONS_PER_JOB
    while job_no * ACTIONS_PER_JOB < target:
        plan = plan_batch(
            BatchRequest(
                batch_id=f"grow-{tag}-{job_no}",
                jobs=[JobRequest(key="job", document_id=DOC, actions=job_actions(job_no))],
            ),
            registry,
            existing,
        )
        t0 = time.perf_counter()
        outcome = await applier.apply(plan.batch_id, plan.jobs[0])
        applying += time.perf_counter() - t0
        assert outcome.ok, outcome
        job_no += 1
    return applying


async def measure(stack: BenchStack, size: int, *, last: bool) -> dict[str, Any]:
    reactor = stack.reactor
    cold: list[float] = []
    for _ in range(COLD_TRIALS):
        fresh = await stack.new_reactor()
        try:
            t0 = time.perf_counter()
            doc = await fresh.get(DOC)
            cold.append(time.perf_counter() - t0)
        finally:
            await fresh.close()
        assert doc.header.revision["global"] == size, doc.header.revision

    warm: list[float] = []
    for _ in range(WARM_CALLS):
        t0 = time.perf_counter()
        await reactor.get(DOC)
        warm.append(time.perf_counter() - t0)

    async def rebuild(revision: int | None, use_keyframes: bool) -> tuple[float, int]:
        t0 = time.perf_counter()
        rev, _, _ = await rebuild_state(
            reactor.db,
            reactor.registry,
            DOC,
            "global",
            revision=revision,
            use_keyframes=use_keyframes,
        )
        return time.perf_counter() - t0, rev

    head = [await rebuild(None, True) for _ in range(REBUILD_CALLS)]
    assert head[0][1] == size
    worst = [await rebuild(size - 1, True) for _ in range(REBUILD_CALLS)]
    full, rev = await rebuild(None, False)
    assert rev == size
    # So far reactor_operations has never been analyzed (see the module
    # docstring); at the last size, analyze it and measure the head again.
    head_analyzed: list[tuple[float, int]] = []
    if last:
        async with reactor.db.pool.acquire() as conn:
            await conn.execute("ANALYZE reactor_operations")
        head_analyzed = [await rebuild(None, True) for _ in range(REBUILD_CALLS)]

    async with reactor.db.pool.acquire() as conn:
        log_bytes = await conn.fetchval("SELECT pg_total_relation_size('reactor_operations')")
        keyframes = await conn.fetchval(
            "SELECT count(*) FROM reactor_keyframes WHERE document_id = $1", DOC
        )
    warm_s = Summary.of(warm)
    return {
        "operations": size,
        "get_cold_ms": statistics.median(cold) * 1000,
        "get_cold_ms_all": [c * 1000 for c in cold],
        "get_warm_ms": warm_s.scaled(1000),
        "rebuild_head_ms": Summary.of([h[0] for h in head]).scaled(1000),
        "rebuild_head_after_analyze_ms": Summary.of([h[0] for h in head_analyzed]).scaled(1000),
        "rebuild_worst_ms": Summary.of([w[0] for w in worst]).scaled(1000),
        "rebuild_full_ms": full * 1000,
        "keyframes": keyframes,
        "operations_table_mb": mb(log_bytes),
    }


async def bench(stack: BenchStack, args: argparse.Namespace) -> dict[str, Any]:
    info = await _results.server_info(stack.database_url, stack.temporal_label)
    reactor = stack.reactor
    created = await reactor.create(TODO, document_id=DOC)
    jobs = await reactor.wait_for_batch(created.batch_id)
    assert jobs[0].status is JobStatus.READ_READY, jobs[0]

    async with reactor.db.pool.acquire() as conn:
        await conn.execute("ALTER TABLE reactor_operations SET (autovacuum_enabled = false)")
    sizes = sorted(int(s) for s in args.sizes.split(","))
    applier = JobApplier(reactor.db, reactor.registry, cache=WriteCache())
    tag = created.batch_id[:8]
    results: list[dict[str, Any]] = []
    current = 0
    for size in sizes:
        if size % ACTIONS_PER_JOB:
            raise SystemExit(f"sizes must be multiples of {ACTIONS_PER_JOB}")
        log.print(f"growing to {size:,} operations (JobApplier, jobs of {ACTIONS_PER_JOB})…")
        t0 = time.perf_counter()
        applying = await grow(stack, applier, current, size, tag)
        wall = time.perf_counter() - t0
        grown = size - current
        current = size
        log.print(f"  {grown:,} operations in {wall:.1f} s; measuring reads…")
        result = await measure(stack, size, last=size == sizes[-1])
        result["grow"] = {
            "operations": grown,
            "wall_s": wall,
            "apply_s": applying,
            "operations_per_s": grown / applying,
        }
        results.append(result)

    return {
        "bench": "read_cost",
        "machine": _results.machine(),
        "code": _results.code_info(),
        "server": info,
        "write_path": "JobApplier.apply directly (no Temporal)",
        "autovacuum": "off for reactor_operations; rebuild_head_ms with the table never analyzed",
        "sizes": results,
    }


def tables(result: dict[str, Any]) -> list[Table]:
    """The table of a result (this script's JSON)."""
    rows = [
        [
            r["operations"],
            r["operations_table_mb"],
            r["grow"]["operations_per_s"],
            r["get_cold_ms"],
            r["get_warm_ms"]["p50"],
            r["get_warm_ms"]["p99"],
            r["rebuild_head_ms"]["p50"],
            r["rebuild_head_after_analyze_ms"]["p50"],
            r["rebuild_worst_ms"]["p50"],
            r["rebuild_full_ms"],
        ]
        for r in result["sizes"]
    ]
    return [
        Table(
            "Read cost vs. log length (one todo-list document, state 0-1 items), ms",
            [
                "global ops",
                "log MB",
                "grow ops/s",
                "get cold",
                "get warm p50",
                "get warm p99",
                "rebuild head (never analyzed)",
                "… after ANALYZE",
                "rebuild N-1",
                "replay all (no kf)",
            ],
            rows,
            caption=(
                f"Grown with JobApplier.apply directly (jobs of {ACTIONS_PER_JOB} actions, fresh "
                "WriteCache): the worker's write path minus Temporal orchestration. get cold = "
                f"first call of a new Reactor, median of {COLD_TRIALS}; warm = {WARM_CALLS} "
                f"calls; rebuild = rebuild_state with keyframes every 100 (p50 of "
                f"{REBUILD_CALLS}): at the head (a keyframe, 0 replayed) with reactor_operations "
                "never analyzed (autovacuum off for it), at the last size again after ANALYZE, "
                "and at N-1 (99 replayed); replay all = use_keyframes=False, once. 'log MB' = "
                "reactor_operations with indexes."
            ),
        )
    ]


def main() -> None:
    def extra(p: argparse.ArgumentParser) -> None:
        p.add_argument("--sizes", default="1000,10000,100000", help="comma-separated op counts")

    args = parse_args(__doc__.splitlines()[0], extra)
    result = run_bench("read_cost", lambda s: bench(s, args))
    _results.show(tables(result))
    if args.json:
        _results.emit_json(result)


if __name__ == "__main__":
    main_guard(main)
