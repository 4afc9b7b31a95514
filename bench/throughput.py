"""Write throughput through the whole stack: Temporal batch workflows, a
worker process applying jobs to PostgreSQL.

    python bench/throughput.py [--json] [--scale 0.1] [--phases aebcds]
                               [--repeat 3] [--preload 500] [--floors bds] [--codec]

The phases, in this order (each phase's repetitions back to back, each run
of b, d and s followed by its floors, see below):

  a. 2,000 single-action jobs as 2,000 batches of 1 job, submitted concurrently
     (at most 64 submissions in flight);
  e. the same 2,000 jobs as concurrent `reactor.execute()` calls, one job
     each (the reactor coalesces them into shared batch workflows);
  b. 2,000 jobs of the same shape as 20 batches of 100;
  c. one batch of 500 jobs: 50 depends_on chains of 10 (chain c on document c % 20);
  d. 200 jobs of 10 actions each, in batches of 100;
  s. sustained: 2,000 jobs of 10 actions each, in batches of 100, over 200
     documents (10 jobs, 100 items per document: the same document sizes as
     d, ten times the volume, so the fixed cost of a run's first and last
     batch is spread thin and the machine's CPU sets the pace).

Every action adds one todo item, and every operation hashes the document's
whole state, so the cost of an operation grows with the document. To keep
phases independent of each other, every run of a phase (each phase,
each repetition) works on its own fresh todo-list documents (20; 200 for s),
`bench-<phase><repetition>-doc-NN` (`bench-b2-doc-07`), with job keys and item
ids prefixed the same way. Before the run's clock starts, and not measured:
one batch of CREATE_DOCUMENT jobs, then with `--preload ITEMS` ITEMS todo
items on each of the documents (jobs of 50 ADD_TODO_ITEM actions, batches
of 100 jobs), to measure how the per-operation cost grows with document size.

Wall time runs from the first submit to the moment every batch's
`reactor.wait_for_batch` returned (all jobs READ_READY). A job's latency is its
batch's: submit start -> wait_for_batch returned (at most 500 waits in
flight: each is a Temporal long poll, and the dev server refuses more than
1,200 per namespace). The worker's peak RSS (children included) is sampled
every 50 ms, and the CPU time of the worker, Temporal, PostgreSQL and this
process is measured per run; both cover the timed part only. The jobs'
commit times (the ledger's `applied_at`) split each run's wall time into the
wait for the first commit, the commits themselves and the report after the
last one, and give the steady commit rate over the middle 80% of the jobs.
When b and s both ran, their median runs (the same jobs and batches, 1
against 10 actions per job) split each process's CPU into a cost per job and
a cost per operation, next to what 10,000 operations/s would leave per
operation. When a and b both ran (the same jobs in 2,000 workflows against
20), theirs split it into a cost per workflow and a cost per job.

Floors (bench/_floors.py), measured right after each run of the phases named
by `--floors` on documents of their own, preloaded the same way: the same
jobs applied in this process by `plan_batch` + `JobApplier.commit` with no
Temporal (the in-process reactor), only their operation rows inserted into
PostgreSQL one transaction per job (raw PostgreSQL), and one empty workflow
per batch (Temporal's fixed cost). A table puts them next to the reactor.

With `--codec`, every run is followed by the same jobs on fresh documents
with every payload AES-GCM encrypted (a second worker process and a Reactor
holding a payload key, bench/_codec.py), and a table compares jobs/s and CPU
per job, codec off against on.

Runs on a shared VM vary by about 20%, so `--repeat N` runs every selected
phase N times. The tables show each phase's median run by jobs/s (for an even
N, the slower of the two middle runs) and, for N > 1, the jobs/s range over
the runs; `--json` has every run under `repetitions`. At the end the operation
log is counted against everything submitted, preloads and document creations
included.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import _codec
import _floors
import _stack
from _floors import FloorResult
from _stack import BenchStack, Summary, fmt, mb, out, table

from reactor.domain.jobs import JobStatus

DOCS = 20
SUBMIT_CONCURRENCY = 64
# Every wait_for_batch holds a long poll on the Temporal frontend; the dev
# server allows 1,200 per namespace (frontend.namespaceCount), workers' task
# polls included. 2,000 unbounded waiters fail with ResourceExhausted
# ("namespace concurrent poller limit exceeded"), so waiting is bounded too.
WAIT_CONCURRENCY = 500
TODO = "powerhouse/todo-list"
PHASE_ORDER = "aebcds"
FLOOR_PHASES = "bds"  # the shapes the targets name: 100-job batches, 10-action jobs
SUSTAINED_DOCS = 200
# --preload: jobs of this many ADD_TODO_ITEM actions, in batches of this many jobs
PRELOAD_ACTIONS_PER_JOB = 50
PRELOAD_BATCH_JOBS = 100

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
    # which repetition (1-based); `tag` (name + repetition) prefixes the run's
    # document ids, job keys and item ids
    repetition: int = 1
    docs: int = DOCS
    # "f": the run of the floors next to repetition `repetition` (own documents)
    variant: str = ""

    @property
    def tag(self) -> str:
        return f"{self.name}{self.repetition}{self.variant}"

    @property
    def documents(self) -> list[str]:
        return [doc_id(self.tag, n, self.docs) for n in range(self.docs)]

    @property
    def jobs(self) -> int:
        return sum(len(b) for b in self.batches)

    @property
    def actions(self) -> int:
        return self.jobs * self.actions_per_job


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


def doc_id(tag: str, n: int | None, docs: int = DOCS) -> str:
    """Document n % docs of the run `tag`; `bench-<tag>-doc-NN` for n=None."""
    return f"bench-{tag}-doc-{'NN' if n is None else f'{n % docs:02d}'}"


def add_item(item_id: str) -> dict[str, Any]:
    return {"type": "ADD_TODO_ITEM", "input": {"id": item_id, "text": f"item {item_id}"}}


def single_action_jobs(tag: str, count: int) -> list[Job]:
    """Job i adds item `<tag>-i` to document i % 20."""
    return [
        {"key": f"{tag}-{i}", "document_id": doc_id(tag, i), "actions": [add_item(f"{tag}-{i}")]}
        for i in range(count)
    ]


def chunks(jobs: list[Job], size: int) -> list[list[Job]]:
    return [jobs[i : i + size] for i in range(0, len(jobs), size)]


def chain_jobs(tag: str, chains: int, length: int) -> list[Job]:
    jobs: list[Job] = []
    for c in range(chains):
        for link in range(length):
            key = f"{tag}-c{c}-{link}"
            jobs.append(
                {
                    "key": key,
                    "document_id": doc_id(tag, c),
                    "actions": [add_item(key)],
                    "depends_on": [f"{tag}-c{c}-{link - 1}"] if link else [],
                }
            )
    return jobs


def multi_action_jobs(tag: str, count: int, actions: int, docs: int = DOCS) -> list[Job]:
    return [
        {
            "key": f"{tag}-m-{i}",
            "document_id": doc_id(tag, i, docs),
            "actions": [add_item(f"{tag}-m-{i}-{a}") for a in range(actions)],
        }
        for i in range(count)
    ]


def create_jobs(tag: str, docs: int) -> list[Job]:
    return [
        {
            "key": f"{tag}-create-{n}",
            "document_id": doc_id(tag, n, docs),
            "scope": "document",
            "actions": [{"type": "CREATE_DOCUMENT", "input": {"document_type": TODO}}],
        }
        for n in range(docs)
    ]


def preload_jobs(tag: str, items: int, docs: int) -> list[Job]:
    """`items` todo items on each of the run's documents, in jobs of 50
    actions; job k of every document comes before job k + 1 of any, so each
    batch spreads over all the documents."""
    jobs: list[Job] = []
    for start in range(0, items, PRELOAD_ACTIONS_PER_JOB):
        stop = min(items, start + PRELOAD_ACTIONS_PER_JOB)
        for n in range(docs):
            prefix = f"{tag}-p{n:02d}"
            jobs.append(
                {
                    "key": f"{prefix}-{start}",
                    "document_id": doc_id(tag, n, docs),
                    "actions": [add_item(f"{prefix}-{k}") for k in range(start, stop)],
                }
            )
    return jobs


def build_phase(name: str, scale: float, repetition: int, variant: str = "") -> Phase:
    phase = _build_phase(name, scale, repetition, f"{name}{repetition}{variant}")
    phase.variant = variant
    return phase


def _build_phase(name: str, scale: float, repetition: int, tag: str) -> Phase:
    n = max(DOCS, round(2000 * scale))
    chains = max(1, round(50 * scale))
    multi = max(1, round(200 * scale))
    if name == "a":
        return Phase(
            "a",
            f"{n:,} × 1-job batches",
            [[j] for j in single_action_jobs(tag, n)],
            1,
            repetition=repetition,
        )
    if name == "e":
        return Phase(
            "e",
            f"{n:,} × execute() (1 job each, concurrent)",
            [[j] for j in single_action_jobs(tag, n)],
            1,
            mode="execute",
            repetition=repetition,
        )
    if name == "b":
        return Phase(
            "b",
            f"{n // 100 or 1} × 100-job batches",
            chunks(single_action_jobs(tag, n), 100),
            1,
            repetition=repetition,
        )
    if name == "c":
        return Phase(
            "c",
            f"1 batch: {chains} chains × 10",
            [chain_jobs(tag, chains, 10)],
            1,
            repetition=repetition,
        )
    if name == "d":
        return Phase(
            "d",
            f"{multi} jobs × 10 actions, batches of 100",
            chunks(multi_action_jobs(tag, multi, 10), 100),
            10,
            repetition=repetition,
        )
    if name == "s":
        docs = max(1, round(SUSTAINED_DOCS * scale))
        return Phase(
            "s",
            f"{multi * 10:,} jobs × 10 actions on {docs} documents, batches of 100",
            chunks(multi_action_jobs(tag, multi * 10, 10, docs), 100),
            10,
            repetition=repetition,
            docs=docs,
        )
    raise ValueError(f"unknown phase {name!r}")


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
    _stack.log.print(
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


async def bench(stack: BenchStack, args: argparse.Namespace) -> dict[str, Any]:
    if not args.codec:
        return await _bench(stack, args)
    async with _codec.encrypted(stack) as keyed:
        return await _bench(stack, args, keyed)


async def _bench(
    stack: BenchStack, args: argparse.Namespace, keyed: BenchStack | None = None
) -> dict[str, Any]:
    info = await _stack.server_info(stack)
    _stack.log.print(
        f"worker idle RSS {mb(stack.worker_idle_rss):.0f} MB; every run on fresh "
        f"documents ({DOCS}; {SUSTAINED_DOCS} for s) with {args.preload:,} items preloaded each; {args.repeat} run(s) per phase"
    )

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
            _stack.log.print(
                f"phase {name} run {rep}/{args.repeat}: {phase.label} ({phase.jobs:,} jobs) "
                f"on {doc_id(phase.tag, None)}…"
            )
            result = await run_phase(stack, phase, args.wait_concurrency, args.preload)
            _stack.log.print(
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
                _stack.log.print(
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

    encrypted_runs = [on for _, on in codec_pairs]
    measured = sum(r.phase.actions for r in all_runs + encrypted_runs) + sum(
        f.operations for f in floor_runs
    )
    preloaded = sum(r.preload_operations for r in all_runs + encrypted_runs) + sum(
        f.preload_operations for f in floor_runs
    )
    created = sum(r.phase.docs for r in all_runs + encrypted_runs) + sum(
        f.documents for f in floor_runs
    )
    check = await verify(stack, measured + preloaded, created)
    peak = stack.rss.peak if stack.rss is not None else 0

    repeated = args.repeat > 1
    rows = []
    for pr in phase_runs:
        r = pr.median
        lat = Summary.of(r.latencies)
        row: list[Any] = [
            f"{r.phase.name}. {r.phase.label}",
            r.phase.jobs,
            r.phase.actions,
            r.submit_s,
            r.wall_s,
            r.jobs_per_s,
            r.phase.actions / r.wall_s,
        ]
        if repeated:
            low, high = pr.jobs_per_s_range
            row.append(f"{fmt(low)}–{fmt(high)}")
        row += [lat.p50 * 1000, lat.p95 * 1000, lat.p99 * 1000, mb(r.worker_peak_rss)]
        rows.append(row)
    columns = ["phase", "jobs", "ops", "submit s", "wall s", "jobs/s", "ops/s"]
    if repeated:
        columns.append("jobs/s range")
    columns += ["p50 ms", "p95 ms", "p99 ms", "worker RSS MB"]
    runs_note = (
        f"median of {args.repeat} runs per phase by jobs/s"
        + (" (even count: the slower middle run)" if args.repeat % 2 == 0 else "")
        + "; range = min–max over the runs. "
        if repeated
        else ""
    )
    out.print(
        table(
            "Throughput (submit → READ_READY via wait_for_batch)",
            columns,
            rows,
            caption=(
                f"{runs_note}Every run on fresh documents ({DOCS}; {SUSTAINED_DOCS} in s), preloaded with "
                f"{args.preload:,} todo items each (not measured). "
                f"latency = the job's batch: submit start → wait_for_batch returned; "
                f"{SUBMIT_CONCURRENCY} submissions and {args.wait_concurrency} waits in flight at most. Worker RSS: idle "
                f"{mb(stack.worker_idle_rss):.0f} MB, peak {mb(peak):.0f} MB over the run "
                f"({stack.rss.samples if stack.rss else 0} samples, 50 ms)."
            ),
        )
    )
    cpus = _stack.machine()["cpus"] or 1
    cpu_rows = []
    for pr in phase_runs:
        r = pr.median
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
            "Where the CPU went (CPU seconds per process tree during each phase"
            + (", median run)" if repeated else ")"),
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
    split = cpu_split(phase_runs)
    if split is not None:
        print_cpu_split(split, cpus)
    per_workflow = workflow_split(phase_runs)
    if per_workflow is not None:
        print_workflow_split(per_workflow)
    timeline_rows = []
    for pr in phase_runs:
        r = pr.median
        tl = r.timeline
        timeline_rows.append(
            [
                r.phase.name,
                r.wall_s,
                tl.first_s,
                tl.last_s - tl.first_s,
                tl.report_s,
                r.jobs_per_s,
                tl.steady_jobs_per_s,
                r.phase.actions / r.wall_s,
                tl.steady_ops_per_s,
            ]
        )
    out.print(
        table(
            "Where the wall time went (from the jobs' commit times"
            + (", median run)" if repeated else ")"),
            [
                "phase",
                "wall s",
                "first commit s",
                "committing s",
                "last commit → reported s",
                "jobs/s",
                "steady jobs/s",
                "ops/s",
                "steady ops/s",
            ],
            timeline_rows,
            caption=(
                "first commit = after the phase's first submission (validation, storage, workflow "
                "start, first activity); steady = rate over the middle 80% of the commits, "
                "ramp-up and tail excluded; the end-to-end jobs/s and ops/s are the measure."
            ),
        )
    )
    if floor_runs:
        print_floors(phase_runs, floor_runs, repeated)
    codec_summary = None
    if codec_pairs:
        codec_rows, codec_summary = _codec.compare(codec_pairs)
        out.print(
            table(
                "Encrypted payloads (AES-GCM codec): the same jobs, codec off → on",
                _codec.COLUMNS,
                codec_rows,
                caption=(
                    "Each codec-off run followed by the same jobs on fresh documents, through a "
                    "second worker and a Reactor holding a payload key; CPU per job summed over "
                    "the runs; Δ = on − off per job (client = this process: encrypting inputs, "
                    "decrypting results)."
                ),
            )
        )
    status = "[green]OK[/]" if check["ok"] else "[red]MISMATCH[/]"
    out.print(
        f"correctness: {check['global_operations']:,} global operations in reactor_operations, "
        f"{check['expected_global_operations']:,} submitted ({measured:,} measured + "
        f"{preloaded:,} preload); sum of document revisions "
        f"{check['sum_of_global_revisions']:,}; {check['document_operations']} CREATE_DOCUMENT "
        f"operations ({check['expected_document_operations']} expected: one per document of "
        f"{len(all_runs) + len(encrypted_runs)} runs and {sum(len(f.runs) for f in floor_runs)} floor runs); "
        f"{check['duplicated_actions']} duplicated actions: {status}"
    )
    return {
        "bench": "throughput",
        "machine": _stack.machine(),
        "code": _stack.code_info(),
        "server": info,
        "scale": args.scale,
        "repeat": args.repeat,
        "preload_items": args.preload,
        "phases": [pr.as_dict() for pr in phase_runs],
        "floors": [f.as_dict() for f in floor_runs],
        "worker_idle_rss_mb": mb(stack.worker_idle_rss),
        "worker_peak_rss_mb": mb(peak),
        "cpu_split": split,
        "workflow_split": per_workflow,
        "verify": check,
        "codec": codec_summary,
    }


CPU_PARTS = ("worker", "postgres", "temporal", "bench")


def _linear_split(
    lo: PhaseResult,
    hi: PhaseResult,
    units: Callable[[PhaseResult], int],
    unit: tuple[str, float],
) -> dict[str, dict[str, float]]:
    """Per part of the stack, four figures: the CPU per job of `lo` and of
    `hi` (the same jobs, `hi` with more `units`; µs, named after the phase),
    what one more unit costs (named and scaled from seconds by `unit`), and
    what a job costs without its units (µs), from
    lo = jobs × job + units × unit."""
    fields = (
        (f"{lo.phase.name}_us_per_job", 1e6),
        (f"{hi.phase.name}_us_per_job", 1e6),
        unit,
        ("us_per_job_alone", 1e6),
    )
    lo_units = units(lo)
    extra = units(hi) - lo_units
    jobs = lo.phase.jobs
    parts: dict[str, dict[str, float]] = {}
    for part in (*CPU_PARTS, "stack"):
        names = CPU_PARTS if part == "stack" else (part,)
        lo_s = sum(lo.cpu.get(p, 0.0) for p in names)
        hi_s = sum(hi.cpu.get(p, 0.0) for p in names)
        per_unit = (hi_s - lo_s) / extra
        figures = (lo_s / jobs, hi_s / jobs, per_unit, (lo_s - per_unit * lo_units) / jobs)
        parts[part] = {name: scale * v for (name, scale), v in zip(fields, figures, strict=True)}
    return parts


def _split_pair(
    phase_runs: list[PhaseRuns], lo: str, hi: str, units: Callable[[PhaseResult], int]
) -> tuple[PhaseResult, PhaseResult] | None:
    """The median runs of `lo` and `hi` when both ran on the same number of
    jobs and `hi` has more units; else None."""
    runs = {pr.median.phase.name: pr.median for pr in phase_runs}
    if lo not in runs or hi not in runs:
        return None
    a, b = runs[lo], runs[hi]
    if a.phase.jobs != b.phase.jobs or units(b) <= units(a):
        return None
    return a, b


def _operations(r: PhaseResult) -> int:
    return r.phase.actions


def _workflows(r: PhaseResult) -> int:
    return len(r.phase.batches)


def cpu_split(phase_runs: list[PhaseRuns]) -> dict[str, Any] | None:
    """The stack's CPU per job and per operation, from the median runs of b
    (1 action per job) and s (10): the same number of jobs in the same
    number of batches, on documents that end the same size, so what s costs
    more is what its extra operations cost. None unless both ran."""
    pair = _split_pair(phase_runs, "b", "s", _operations)
    if pair is None:
        return None
    b, s = pair
    parts = _linear_split(b, s, _operations, ("us_per_operation", 1e6))
    busy = s.system.get("busy_pct", float("nan")) / 100
    extra_ops = s.phase.actions_per_job - b.phase.actions_per_job
    return {"parts": parts, "s_busy_fraction": busy, "extra_operations_per_job": extra_ops}


def workflow_split(phase_runs: list[PhaseRuns]) -> dict[str, Any] | None:
    """The stack's CPU per workflow and per job, from the median runs of b
    (2,000 jobs in 20 workflows) and a (the same jobs, a workflow each):
    what a costs more is what its extra workflows cost. a's jobs travel
    inside the workflow's input and b's by reference (a batch insert and a
    load per workflow, a row per job), so that difference is in the figures
    too. None unless both ran."""
    pair = _split_pair(phase_runs, "b", "a", _workflows)
    if pair is None:
        return None
    b, a = pair
    jobs = b.phase.jobs
    parts = _linear_split(b, a, _workflows, ("ms_per_workflow", 1e3))
    stack = parts["stack"]
    b_workflows = _workflows(b)
    workflows_us = 1e3 * stack["ms_per_workflow"] * b_workflows
    return {
        "parts": parts,
        "a_workflows": _workflows(a),
        "b_workflows": b_workflows,
        "b_jobs_per_workflow": jobs / b_workflows,
        # The part of b's CPU its workflows cost, not its jobs.
        "b_workflow_share": workflows_us / (stack["b_us_per_job"] * jobs),
    }


# The split's table, as this script prints it and bench/_report.py writes it.
CPU_SPLIT_COLUMNS = ["process", "b µs/job", "s µs/job", "µs per operation", "µs per job, alone"]


def _split_rows(split: dict[str, Any], keys: tuple[str, ...]) -> list[list[Any]]:
    """A split's table rows: a process (or the whole stack), then `keys`."""
    return [
        [part if part != "stack" else "whole stack", *(v[k] for k in keys)]
        for part, v in split["parts"].items()
    ]


def cpu_split_rows(split: dict[str, Any]) -> list[list[Any]]:
    return _split_rows(
        split, ("b_us_per_job", "s_us_per_job", "us_per_operation", "us_per_job_alone")
    )


def print_cpu_split(split: dict[str, Any], cpus: int) -> None:
    stack = split["parts"]["stack"]
    busy = split["s_busy_fraction"]
    budget = 1e6 * cpus * busy / 10_000
    out.print(
        table(
            "CPU per job and per operation (from b and s: same jobs and batches, 1 vs 10 actions)",
            CPU_SPLIT_COLUMNS,
            cpu_split_rows(split),
            caption=(
                f"per operation = (s − b) / {split['extra_operations_per_job']}; "
                f"a job of s costs the stack "
                f"{stack['us_per_job_alone']:,.0f} µs for being a job and "
                f"{stack['us_per_operation']:,.0f} µs per operation. At the {100 * busy:.0f}% of "
                f"{cpus} cores s kept busy, 10,000 operations/s leave {budget:,.0f} µs per "
                f"operation in all."
            ),
        )
    )


WORKFLOW_SPLIT_COLUMNS = [
    "process",
    "a µs/job",
    "b µs/job",
    "ms per workflow",
    "µs per job, alone",
]


def workflow_split_rows(split: dict[str, Any]) -> list[list[Any]]:
    return _split_rows(
        split, ("a_us_per_job", "b_us_per_job", "ms_per_workflow", "us_per_job_alone")
    )


def print_workflow_split(split: dict[str, Any]) -> None:
    stack = split["parts"]["stack"]
    out.print(
        table(
            "CPU per workflow and per job (from a and b: the same jobs in "
            f"{split['a_workflows']:,} vs {split['b_workflows']:,} workflows)",
            WORKFLOW_SPLIT_COLUMNS,
            workflow_split_rows(split),
            caption=(
                "per workflow = (a − b) / (a's workflows − b's); a batch's workflow costs the "
                f"stack {stack['ms_per_workflow']:,.1f} ms whatever its size, a job "
                f"{stack['us_per_job_alone']:,.0f} µs. At "
                f"{split['b_jobs_per_workflow']:,.0f} jobs per batch the workflows are "
                f"{100 * split['b_workflow_share']:.0f}% of b's CPU. a's jobs travel in the "
                "workflow input, b's by reference: that difference is in both figures."
            ),
        )
    )


def print_floors(phase_runs: list[PhaseRuns], floor_runs: list[FloorRuns], repeated: bool) -> None:
    by_phase = {pr.median.phase.name: pr.median.as_dict() for pr in phase_runs}
    rows = [_floors.table_row(by_phase[f.phase], f.as_dict()) for f in floor_runs]
    title = "Floors: the same jobs without Temporal, and without the reactor"
    out.print(
        table(
            title + (" (median runs)" if repeated else ""),
            _floors.COLUMNS,
            rows,
            caption=_floors.CAPTION,
        )
    )


def _at_least(low: int) -> Any:
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}")
        return value

    return parse


def main() -> None:
    def extra(p: argparse.ArgumentParser) -> None:
        p.add_argument("--scale", type=float, default=1.0, help="multiply job counts (smoke runs)")
        p.add_argument(
            "--phases", default=PHASE_ORDER, help=f"which phases to run (default {PHASE_ORDER})"
        )
        p.add_argument(
            "--floors",
            default=FLOOR_PHASES,
            help=f"the phases to measure floors next to (default {FLOOR_PHASES}; '' for none)",
        )
        p.add_argument(
            "--wait-concurrency",
            type=int,
            default=WAIT_CONCURRENCY,
            help=f"wait_for_batch calls in flight at most (default {WAIT_CONCURRENCY})",
        )
        p.add_argument(
            "--repeat",
            type=_at_least(1),
            default=1,
            help="run every selected phase N times, each on fresh documents; "
            "the tables show the median run (default 1)",
        )
        p.add_argument(
            "--codec",
            action="store_true",
            help="follow every run with the same jobs, payloads encrypted, on a second worker "
            "holding the key; a table compares the two",
        )
        p.add_argument(
            "--preload",
            type=_at_least(0),
            default=0,
            metavar="ITEMS",
            help="todo items put on each fresh document before a run's clock starts (default 0)",
        )

    args = _stack.parse_args(__doc__.splitlines()[0], extra)
    payload = _stack.run_bench("throughput", lambda s: bench(s, args))
    if args.json:
        _stack.emit_json(payload)
    if not payload["verify"]["ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    _stack.main_guard(main)
