"""Runs the phases of bench/throughput.py: each phase's repetitions back to
back on fresh documents (created and preloaded before the clock starts),
each run followed by its floors and its codec-on twin when asked, and the
operation log counted against everything submitted at the end.

A run's wall time runs from the first submit to the moment every batch's
`reactor.wait_for_batch` returned; a job's latency is its batch's. The RSS
window, the CPU meter and the wall clock cover only that part."""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import _floors
from _floors import FloorResult
from _results import log
from _stack import BenchStack
from _stats import Summary, mb
from _workloads import (
    PHASE_ORDER,
    PRELOAD_BATCH_JOBS,
    Job,
    Phase,
    build_phase,
    chunks,
    create_jobs,
    doc_id,
    preload_jobs,
)

from reactor.domain.jobs import JobStatus

SUBMIT_CONCURRENCY = 64
# Every wait_for_batch holds a long poll on the Temporal frontend; the dev
# server allows 1,200 per namespace (frontend.namespaceCount), workers' task
# polls included. 2,000 unbounded waiters fail with ResourceExhausted
# ("namespace concurrent poller limit exceeded"), so waiting is bounded too.
WAIT_CONCURRENCY = 500


@dataclass
class PhaseResult:
    phase: Phase
    setup_s: float  # creating (and preloading) the run's documents, not measured
    preload_operations: int
    submit_s: float
    wall_s: float
    latencies: list[float]  # per job, seconds
    statuses: dict[str, int]
    worker_peak_rss: int
    cpu: dict[str, float]
    system: dict[str, float]
    # when each job committed, seconds after the phase's first submission
    # (the ledger's applied_at, PostgreSQL's clock; same machine)
    commits: list[float] = field(default_factory=list)

    @property
    def jobs_per_s(self) -> float:
        return self.phase.jobs / self.wall_s

    @property
    def timeline(self) -> Timeline:
        return Timeline.of(self.commits, self.wall_s, self.phase.actions_per_job)

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
            "jobs_per_s": self.jobs_per_s,
            "operations_per_s": self.phase.actions / self.wall_s,
            "latency_ms": lat.scaled(1000),
            "statuses": self.statuses,
            "worker_peak_rss_mb": mb(self.worker_peak_rss),
            "cpu_s": self.cpu,
            "machine_cpu_pct": self.system,
            "commit_timeline": self.timeline.as_dict(),
        }

    def repetition_dict(self) -> dict[str, Any]:
        """This run alone: what differs between repetitions of a phase."""
        d = self.as_dict()
        for constant in ("phase", "label", "batches", "jobs", "operations"):
            del d[constant]
        return {
            "repetition": self.phase.repetition,
            "documents": doc_id(self.phase.tag, None),
            "setup_s": self.setup_s,
            **d,
        }


@dataclass
class Timeline:
    """Where a run's wall time went, from the jobs' commit times: waiting for
    the first commit (validation, storage, workflow start, first activity),
    committing, and reporting after the last commit (the last activities'
    read models and announcements, workflow completion, the client's result).
    The steady rate counts the middle 80% of the commits, so ramp-up and tail
    stay out of it."""

    first_s: float
    last_s: float
    steady_jobs_per_s: float
    steady_ops_per_s: float
    report_s: float  # last commit -> every job READ_READY and reported

    @classmethod
    def of(cls, commits: list[float], wall_s: float, actions_per_job: int) -> Timeline:
        if len(commits) < 10:
            nan = float("nan")
            return cls(nan, nan, nan, nan, nan)
        t = sorted(commits)
        lo, hi = t[len(t) // 10], t[(len(t) * 9) // 10]
        rate = (len(t) * 8 / 10) / (hi - lo) if hi > lo else float("nan")
        return cls(t[0], t[-1], rate, rate * actions_per_job, wall_s - t[-1])

    def as_dict(self) -> dict[str, float]:
        return {
            "first_commit_s": self.first_s,
            "last_commit_s": self.last_s,
            "steady_jobs_per_s": self.steady_jobs_per_s,
            "steady_operations_per_s": self.steady_ops_per_s,
            "report_after_last_commit_s": self.report_s,
        }


@dataclass
class PhaseRuns:
    """Every repetition of one phase, in the order they ran."""

    runs: list[PhaseResult]

    @property
    def median(self) -> PhaseResult:
        """The median run by jobs/s; for an even count, the slower middle one."""
        ordered = sorted(self.runs, key=lambda r: r.jobs_per_s)
        return ordered[(len(ordered) - 1) // 2]

    @property
    def jobs_per_s_range(self) -> tuple[float, float]:
        rates = [r.jobs_per_s for r in self.runs]
        return min(rates), max(rates)

    def as_dict(self) -> dict[str, Any]:
        median = self.median
        return {
            **median.as_dict(),
            "median_repetition": median.phase.repetition,
            "jobs_per_s_range": list(self.jobs_per_s_range),
            "repetitions": [r.repetition_dict() for r in self.runs],
        }


async def run_unmeasured(stack: BenchStack, batches: list[list[Job]], what: str) -> int:
    """Submits `batches` concurrently and waits for all of them; every job must
    end READ_READY. Returns the number of actions applied."""
    reactor = stack.reactor

    async def one(batch: list[Job]) -> None:
        result = await reactor.execute_batch({"jobs": batch})
        infos = await reactor.wait_for_batch(result.batch_id)
        failed = [j for j in infos if j.status is not JobStatus.READ_READY]
        if failed:
            raise RuntimeError(f"{what}: {len(failed)} of {len(infos)} jobs failed: {failed[:3]}")

    await asyncio.gather(*(one(b) for b in batches))
    return sum(len(j["actions"]) for b in batches for j in b)


async def prepare(stack: BenchStack, phase: Phase, preload: int) -> int:
    """Creates the run's documents and preloads them; not measured.
    Returns the number of global (preload) operations written."""
    await run_unmeasured(stack, [create_jobs(phase.tag, phase.docs)], f"creating {phase.tag}")
    if not preload:
        return 0
    return await run_unmeasured(
        stack,
        chunks(preload_jobs(phase.tag, preload, phase.docs), PRELOAD_BATCH_JOBS),
        f"preload {phase.tag}",
    )


async def run_phase(
    stack: BenchStack, phase: Phase, wait_concurrency: int, preload: int
) -> PhaseResult:
    t_setup = time.perf_counter()
    preloaded = await prepare(stack, phase, preload)
    setup_s = time.perf_counter() - t_setup

    reactor = stack.reactor
    gate = asyncio.Semaphore(SUBMIT_CONCURRENCY)
    waiters = asyncio.Semaphore(wait_concurrency)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    submitted_at: list[float] = []
    job_ids: list[str] = []

    async def one(batch: list[Job]) -> None:
        if phase.mode == "execute":
            [job] = batch
            t0 = time.perf_counter()
            info = await reactor.execute(job["document_id"], "main", job["actions"])
            submitted_at.append(time.perf_counter())
            job_ids.append(info.id)
            final = await reactor.wait_for_job(info.id)
            latencies.append(time.perf_counter() - t0)
            statuses[final.status.value] = statuses.get(final.status.value, 0) + 1
            return
        async with gate:
            t0 = time.perf_counter()
            result = await reactor.execute_batch({"jobs": batch})
            submitted_at.append(time.perf_counter())
            job_ids.extend(info.id for info in result.jobs.values())
        async with waiters:
            infos = await reactor.wait_for_batch(result.batch_id)
        elapsed = time.perf_counter() - t0
        latencies.extend([elapsed] * len(infos))
        for info in infos:
            statuses[info.status.value] = statuses.get(info.status.value, 0) + 1

    # The timed part: RSS window, CPU accounting and wall clock cover only this.
    if stack.rss is not None:
        stack.rss.mark()
    stack.cpu.start()
    start, start_epoch = time.perf_counter(), time.time()
    await asyncio.gather(*(one(b) for b in phase.batches))
    wall = time.perf_counter() - start
    cpu = stack.cpu.stop()
    committed = await stack.reactor.db.pool.fetchval(
        "SELECT array_agg(extract(epoch FROM applied_at)::float8) FROM reactor_applied_jobs "
        "WHERE job_id = ANY($1::text[])",
        job_ids,
    )
    return PhaseResult(
        phase=phase,
        setup_s=setup_s,
        preload_operations=preloaded,
        submit_s=max(submitted_at) - start,
        wall_s=wall,
        latencies=latencies,
        statuses=statuses,
        worker_peak_rss=stack.rss.window_peak if stack.rss is not None else 0,
        cpu=cpu,
        system=dict(stack.cpu.system),
        commits=[c - start_epoch for c in committed or []],
    )


@dataclass
class FloorRuns:
    """The floors measured next to each repetition of one phase."""

    phase: str
    runs: list[dict[str, FloorResult]] = field(default_factory=list)
    operations: int = 0  # written to reactor_operations (the in-process floor)
    preload_operations: int = 0
    documents: int = 0

    def median(self, floor: str) -> FloorResult:
        ordered = sorted((r[floor] for r in self.runs), key=lambda f: f.wall_s)
        return ordered[len(ordered) // 2]

    def as_dict(self) -> dict[str, Any]:
        floors = self.runs[0].keys() if self.runs else []
        return {
            "phase": self.phase,
            **{
                f: {
                    **self.median(f).as_dict(),
                    "repetitions": [r[f].as_dict() for r in self.runs],
                }
                for f in floors
            },
        }


async def run_floors(
    stack: BenchStack, name: str, scale: float, repetition: int, preload: int, into: FloorRuns
) -> None:
    """The floors for phase `name` (see bench/_floors.py), on documents of
    their own (`bench-<phase><repetition>f-doc-NN`), preloaded like the phase's."""
    phase = build_phase(name, scale, repetition, variant="f")
    into.preload_operations += await prepare(stack, phase, preload)
    into.documents += phase.docs
    results = {
        "in_process": await _floors.in_process(stack, phase.batches, phase.documents, phase.tag),
        "raw_postgres": await _floors.raw_postgres(stack, phase.batches, phase.tag),
        "noop_workflows": await _floors.noop_workflows(stack, len(phase.batches), phase.tag),
    }
    into.operations += phase.actions
    into.runs.append(results)
    log.print(
        "  floors: "
        + ", ".join(
            f"{r.name} {r.wall_s:.2f} s"
            + (f" ({r.operations_per_s:,.0f} ops/s)" if r.operations else f" ({r.jobs} workflows)")
            for r in results.values()
        )
    )


async def verify(
    stack: BenchStack, expected_global: int, expected_documents: int
) -> dict[str, Any]:
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
        and by_scope.get("document", 0) == expected_documents
        and duplicates == 0
    )
    return {
        "expected_global_operations": expected_global,
        "global_operations": global_ops,
        "expected_document_operations": expected_documents,
        "document_operations": by_scope.get("document", 0),
        "sum_of_global_revisions": revisions,
        "duplicated_actions": duplicates,
        "ok": ok,
    }


@dataclass
class Runs:
    """Every run of a throughput benchmark, and the log's count after them."""

    phases: list[PhaseRuns]
    floors: list[FloorRuns]
    codec_pairs: list[tuple[PhaseResult, PhaseResult]]  # (codec off, codec on)
    check: dict[str, Any]


async def run_all(
    stack: BenchStack, args: argparse.Namespace, keyed: BenchStack | None = None
) -> Runs:
    """The phases in `args.phases`, `args.repeat` times each; with `keyed`,
    every run again with payloads encrypted on its worker."""
    all_runs: list[PhaseResult] = []
    phase_runs: list[PhaseRuns] = []
    floor_runs: list[FloorRuns] = []
    codec_pairs: list[tuple[PhaseResult, PhaseResult]] = []
    for name in PHASE_ORDER:
        if name not in args.phases:
            continue
        runs = []
        floors = FloorRuns(name) if name in args.floors else None
        for rep in range(1, args.repeat + 1):
            phase = build_phase(name, args.scale, rep)
            log.print(
                f"phase {name} run {rep}/{args.repeat}: {phase.label} ({phase.jobs:,} jobs) "
                f"on {doc_id(phase.tag, None)}…"
            )
            result = await run_phase(stack, phase, args.wait_concurrency, args.preload)
            log.print(
                f"  setup {result.setup_s:.1f} s (not measured); {result.wall_s:.1f} s, "
                f"{result.jobs_per_s:.0f} jobs/s, statuses {result.statuses}"
            )
            runs.append(result)
            if keyed is not None:
                # The same jobs with every payload encrypted, on the codec worker.
                encrypted = await run_phase(
                    keyed,
                    build_phase(name, args.scale, rep, variant="k"),
                    args.wait_concurrency,
                    args.preload,
                )
                log.print(
                    f"  codec on: {encrypted.wall_s:.1f} s, {encrypted.jobs_per_s:.0f} jobs/s, "
                    f"statuses {encrypted.statuses}"
                )
                codec_pairs.append((result, encrypted))
            if floors is not None:
                # Next to each run, so both see the same phase of a drifting VM.
                await run_floors(stack, name, args.scale, rep, args.preload, floors)
        all_runs.extend(runs)
        phase_runs.append(PhaseRuns(runs))
        if floors is not None:
            floor_runs.append(floors)

    runs = all_runs + [on for _, on in codec_pairs]
    measured = sum(r.phase.actions for r in runs) + sum(f.operations for f in floor_runs)
    preloaded = sum(r.preload_operations for r in runs) + sum(
        f.preload_operations for f in floor_runs
    )
    created = sum(r.phase.docs for r in runs) + sum(f.documents for f in floor_runs)
    check = await verify(stack, measured + preloaded, created)
    check.update(
        measured_operations=measured,
        preload_operations=preloaded,
        runs=len(runs),
        floor_runs=sum(len(f.runs) for f in floor_runs),
    )
    return Runs(phase_runs, floor_runs, codec_pairs, check)
