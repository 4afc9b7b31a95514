"""Write throughput through the whole stack: Temporal batch workflows, a
worker process applying jobs to PostgreSQL.

    python bench/throughput.py [--json] [--scale 0.1] [--phases aebcd]

Setup creates 20 todo-list documents. Then, one after the other:

  a. 2,000 single-action jobs as 2,000 batches of 1 job, submitted concurrently
     (at most 64 submissions in flight);
  b. 2,000 jobs of the same shape as 20 batches of 100;
  c. one batch of 500 jobs: 50 depends_on chains of 10 (chain c on document c % 20);
  d. 200 jobs of 10 actions each, in batches of 100.

Wall time runs from the first submit to the moment every batch's
`reactor.wait_for_batch` returned (all jobs READ_READY). A job's latency is its
batch's: submit start -> wait_for_batch returned (at most 500 waits in
flight: each is a Temporal long poll, and the dev server refuses more than
1,200 per namespace). The worker's peak RSS (children included) is sampled
every 50 ms, and the CPU time of the worker, Temporal, PostgreSQL and this
process is measured per phase. At the end the operation log is counted
against what was submitted.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from typing import Any

import _stack
from _stack import BenchStack, Summary, mb, out, table

from reactor.domain.jobs import JobStatus

DOCS = 20
SUBMIT_CONCURRENCY = 64
# Every wait_for_batch holds a long poll on the Temporal frontend; the dev
# server allows 1,200 per namespace (frontend.namespaceCount), workers' task
# polls included. 2,000 unbounded waiters fail with ResourceExhausted
# ("namespace concurrent poller limit exceeded"), so waiting is bounded too.
WAIT_CONCURRENCY = 500
TODO = "powerhouse/todo-list"

Job = dict[str, Any]


@dataclass
class Phase:
    name: str
    label: str
    batches: list[list[Job]]
    actions_per_job: int
    # "batch": one execute_batch per batch; "execute": one reactor.execute()
    # per job, all concurrent (the reactor coalesces them into shared batches)
    mode: str = "batch"

    @property
    def jobs(self) -> int:
        return sum(len(b) for b in self.batches)

    @property
    def actions(self) -> int:
        return self.jobs * self.actions_per_job


@dataclass
class PhaseResult:
    phase: Phase
    submit_s: float
    wall_s: float
    latencies: list[float]  # per job, seconds
    statuses: dict[str, int]
    worker_peak_rss: int
    cpu: dict[str, float]
    system: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        lat = Summary.of(self.latencies)
        return {
            "phase": self.phase.name,
            "label": self.phase.label,
            "batches": len(self.phase.batches),
            "jobs": self.phase.jobs,
            "operations": self.phase.actions,
            "submit_s": self.submit_s,
            "wall_s": self.wall_s,
            "jobs_per_s": self.phase.jobs / self.wall_s,
            "operations_per_s": self.phase.actions / self.wall_s,
            "latency_ms": lat.scaled(1000),
            "statuses": self.statuses,
            "worker_peak_rss_mb": mb(self.worker_peak_rss),
            "cpu_s": self.cpu,
            "machine_cpu_pct": self.system,
        }


def doc_id(n: int) -> str:
    return f"bench-doc-{n % DOCS:02d}"


def add_item(item_id: str) -> dict[str, Any]:
    return {"type": "ADD_TODO_ITEM", "input": {"id": item_id, "text": f"item {item_id}"}}


def single_action_jobs(prefix: str, count: int) -> list[Job]:
    """Job i adds item `<prefix>-i` to document i % 20."""
    return [
        {"key": f"{prefix}-{i}", "document_id": doc_id(i), "actions": [add_item(f"{prefix}-{i}")]}
        for i in range(count)
    ]


def chunks(jobs: list[Job], size: int) -> list[list[Job]]:
    return [jobs[i : i + size] for i in range(0, len(jobs), size)]


def chain_jobs(chains: int, length: int) -> list[Job]:
    jobs: list[Job] = []
    for c in range(chains):
        for link in range(length):
            key = f"c{c}-{link}"
            jobs.append(
                {
                    "key": key,
                    "document_id": doc_id(c),
                    "actions": [add_item(key)],
                    "depends_on": [f"c{c}-{link - 1}"] if link else [],
                }
            )
    return jobs


def multi_action_jobs(count: int, actions: int) -> list[Job]:
    return [
        {
            "key": f"m-{i}",
            "document_id": doc_id(i),
            "actions": [add_item(f"m-{i}-{a}") for a in range(actions)],
        }
        for i in range(count)
    ]


def phases(scale: float) -> list[Phase]:
    n = max(DOCS, round(2000 * scale))
    chains = max(1, round(50 * scale))
    multi = max(1, round(200 * scale))
    return [
        Phase("a", f"{n:,} × 1-job batches", [[j] for j in single_action_jobs("a", n)], 1),
        Phase(
            "e",
            f"{n:,} × execute() (1 job each, concurrent)",
            [[j] for j in single_action_jobs("e", n)],
            1,
            mode="execute",
        ),
        Phase(
            "b", f"{n // 100 or 1} × 100-job batches", chunks(single_action_jobs("b", n), 100), 1
        ),
        Phase("c", f"1 batch: {chains} chains × 10", [chain_jobs(chains, 10)], 1),
        Phase(
            "d",
            f"{multi} jobs × 10 actions, batches of 100",
            chunks(multi_action_jobs(multi, 10), 100),
            10,
        ),
    ]


async def run_phase(stack: BenchStack, phase: Phase, wait_concurrency: int) -> PhaseResult:
    reactor = stack.reactor
    gate = asyncio.Semaphore(SUBMIT_CONCURRENCY)
    waiters = asyncio.Semaphore(wait_concurrency)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    submitted_at: list[float] = []

    async def one(batch: list[Job]) -> None:
        if phase.mode == "execute":
            [job] = batch
            t0 = time.perf_counter()
            info = await reactor.execute(job["document_id"], "main", job["actions"])
            submitted_at.append(time.perf_counter())
            final = await reactor.wait_for_job(info.id)
            latencies.append(time.perf_counter() - t0)
            statuses[final.status.value] = statuses.get(final.status.value, 0) + 1
            return
        async with gate:
            t0 = time.perf_counter()
            result = await reactor.execute_batch({"jobs": batch})
            submitted_at.append(time.perf_counter())
        async with waiters:
            infos = await reactor.wait_for_batch(result.batch_id)
        elapsed = time.perf_counter() - t0
        latencies.extend([elapsed] * len(infos))
        for info in infos:
            statuses[info.status.value] = statuses.get(info.status.value, 0) + 1

    if stack.rss is not None:
        stack.rss.mark()
    stack.cpu.start()
    start = time.perf_counter()
    await asyncio.gather(*(one(b) for b in phase.batches))
    wall = time.perf_counter() - start
    cpu = stack.cpu.stop()
    return PhaseResult(
        phase=phase,
        submit_s=max(submitted_at) - start,
        wall_s=wall,
        latencies=latencies,
        statuses=statuses,
        worker_peak_rss=stack.rss.window_peak if stack.rss is not None else 0,
        cpu=cpu,
        system=dict(stack.cpu.system),
    )


async def verify(stack: BenchStack, expected_global: int) -> dict[str, Any]:
    async with stack.reactor.db.pool.acquire() as conn:
        by_scope = {
            r["scope"]: r["n"]
            for r in await conn.fetch(
                "SELECT scope, count(*) AS n FROM reactor_operations GROUP BY scope"
            )
        }
        revisions = await conn.fetchval(
            "SELECT coalesce(sum(revision), 0) FROM reactor_document_states WHERE scope = 'global'"
        )
        duplicates = await conn.fetchval(
            "SELECT count(*) FROM (SELECT job_id FROM reactor_operations WHERE scope = 'global' "
            "GROUP BY job_id, (action->>'id') HAVING count(*) > 1) d"
        )
    global_ops = by_scope.get("global", 0)
    ok = (
        global_ops == expected_global
        and revisions == expected_global
        and by_scope.get("document", 0) == DOCS
        and duplicates == 0
    )
    return {
        "expected_global_operations": expected_global,
        "global_operations": global_ops,
        "document_operations": by_scope.get("document", 0),
        "sum_of_global_revisions": revisions,
        "duplicated_actions": duplicates,
        "ok": ok,
    }


async def bench(stack: BenchStack, args: argparse.Namespace) -> dict[str, Any]:
    info = await _stack.server_info(stack)
    reactor = stack.reactor
    setup = await reactor.execute_batch(
        {
            "jobs": [
                {
                    "key": f"create-{n}",
                    "document_id": doc_id(n),
                    "scope": "document",
                    "actions": [{"type": "CREATE_DOCUMENT", "input": {"document_type": TODO}}],
                }
                for n in range(DOCS)
            ]
        }
    )
    created = await reactor.wait_for_batch(setup.batch_id)
    assert all(j.status is JobStatus.READ_READY for j in created), created
    _stack.log.print(
        f"setup: {DOCS} documents created; worker idle RSS {mb(stack.worker_idle_rss):.0f} MB"
    )

    results: list[PhaseResult] = []
    for phase in phases(args.scale):
        if phase.name not in args.phases:
            continue
        _stack.log.print(f"phase {phase.name}: {phase.label} ({phase.jobs:,} jobs)…")
        result = await run_phase(stack, phase, args.wait_concurrency)
        _stack.log.print(
            f"  {result.wall_s:.1f} s, {phase.jobs / result.wall_s:.0f} jobs/s, "
            f"statuses {result.statuses}"
        )
        results.append(result)

    expected = sum(r.phase.actions for r in results)
    check = await verify(stack, expected)
    peak = stack.rss.peak if stack.rss is not None else 0

    rows = []
    for r in results:
        lat = Summary.of(r.latencies)
        rows.append(
            [
                f"{r.phase.name}. {r.phase.label}",
                r.phase.jobs,
                r.phase.actions,
                r.submit_s,
                r.wall_s,
                r.phase.jobs / r.wall_s,
                r.phase.actions / r.wall_s,
                lat.p50 * 1000,
                lat.p95 * 1000,
                lat.p99 * 1000,
                mb(r.worker_peak_rss),
            ]
        )
    out.print(
        table(
            "Throughput (submit → READ_READY via wait_for_batch)",
            [
                "phase",
                "jobs",
                "ops",
                "submit s",
                "wall s",
                "jobs/s",
                "ops/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "worker RSS MB",
            ],
            rows,
            caption=(
                f"latency = the job's batch: submit start → wait_for_batch returned; "
                f"{SUBMIT_CONCURRENCY} submissions and {args.wait_concurrency} waits in flight at most. Worker RSS: idle "
                f"{mb(stack.worker_idle_rss):.0f} MB, peak {mb(peak):.0f} MB over the run "
                f"({stack.rss.samples if stack.rss else 0} samples, 50 ms)."
            ),
        )
    )
    cpus = _stack.machine()["cpus"] or 1
    cpu_rows = []
    for r in results:
        cpu_rows.append(
            [
                r.phase.name,
                r.wall_s,
                r.cpu.get("worker", float("nan")),
                r.cpu.get("temporal", float("nan")),
                r.cpu.get("postgres", float("nan")),
                r.cpu.get("bench", float("nan")),
                r.system.get("busy_pct", float("nan")),
                r.system.get("iowait_pct", float("nan")),
                r.system.get("other_cpu_s", float("nan")),
                1000 * r.cpu.get("worker", float("nan")) / r.phase.jobs,
            ]
        )
    out.print(
        table(
            "Where the CPU went (CPU seconds per process tree during each phase)",
            [
                "phase",
                "wall s",
                "worker",
                "temporal",
                "postgres",
                "bench client",
                f"busy % of {cpus} cores",
                "iowait %",
                "other procs",
                "worker ms/job",
            ],
            cpu_rows,
        )
    )
    status = "[green]OK[/]" if check["ok"] else "[red]MISMATCH[/]"
    out.print(
        f"correctness: {check['global_operations']:,} global operations in reactor_operations, "
        f"{check['expected_global_operations']:,} submitted; sum of document revisions "
        f"{check['sum_of_global_revisions']:,}; {check['document_operations']} CREATE_DOCUMENT "
        f"operations; {check['duplicated_actions']} duplicated actions: {status}"
    )
    return {
        "bench": "throughput",
        "machine": _stack.machine(),
        "code": _stack.code_info(),
        "server": info,
        "scale": args.scale,
        "phases": [r.as_dict() for r in results],
        "worker_idle_rss_mb": mb(stack.worker_idle_rss),
        "worker_peak_rss_mb": mb(peak),
        "verify": check,
    }


def main() -> None:
    def extra(p: argparse.ArgumentParser) -> None:
        p.add_argument("--scale", type=float, default=1.0, help="multiply job counts (smoke runs)")
        p.add_argument("--phases", default="aebcd", help="which phases to run (default aebcd)")
        p.add_argument(
            "--wait-concurrency",
            type=int,
            default=WAIT_CONCURRENCY,
            help=f"wait_for_batch calls in flight at most (default {WAIT_CONCURRENCY})",
        )

    args = _stack.parse_args(__doc__.splitlines()[0], extra)
    payload = _stack.run_bench("throughput", lambda s: bench(s, args))
    if args.json:
        _stack.emit_json(payload)
    if not payload["verify"]["ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    _stack.main_guard(main)
