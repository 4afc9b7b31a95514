"""Jobs/s through the HTTP API next to the Python API, in one run.

    python bench/http_load.py [--json] [--jobs 1000] [--clients 32]
                              [--batch-jobs 100] [--batch-clients 4] [--repeat 1]

Two shapes of work, each done twice, through the HTTP API and through the
Python API, on fresh todo-list documents of its own (20 per run, created
before the clock starts), every action adding one todo item:

- execute: `--jobs` single-action jobs, `--clients` clients at once, each
  sending its next job when the last one answered: `POST
  /v1/documents/{id}/actions?wait=true` against `reactor.execute()` then
  `reactor.wait_for_job()`; the reactor coalesces concurrent calls into
  shared batches either way;
- batches: the same number of jobs in batches of `--batch-jobs`,
  `--batch-clients` clients at once: `POST /v1/batches?wait=true` against
  `reactor.execute_batch()` then `wait_for_job` on each job.

The HTTP API is `reactor serve` in its own process (bench/_serve.py), its
worker in that process, reached over loopback (bench/_http_client.py:
keep-alive, one connection per client). The Python API is the bench's Reactor in this
process with the bench's worker process, as an application embeds it. A run
ends when every job answered READ_READY. With `--repeat N` the four runs go
round N times, interleaved, and the tables show each one's median; the CPU
seconds per job of each process cover the timed part only.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import _results
from _http_client import Connection
from _metering import CpuMeter
from _results import log
from _serve import Served, reactor_serve
from _stack import BenchStack, main_guard, parse_args, run_bench
from _stats import Summary
from _tables import Table
from _workloads import Job, add_item, create_jobs, doc_id

from reactor.api.reactor import Reactor
from reactor.domain.jobs import JobStatus, parse_job_id

READ_READY = JobStatus.READ_READY.value
SHAPES = ("execute", "batches")
APIS = ("http", "python")
LABELS = {"http": "HTTP", "python": "Python"}


@dataclass
class Run:
    shape: str
    api: str
    jobs: int
    wall_s: float
    latencies: list[float]  # per request, seconds
    cpu: dict[str, float]
    workflows: int  # batch workflows the jobs ran in (the reactor coalesces execute calls)

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.wall_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "api": self.api,
            "jobs": self.jobs,
            "wall_s": self.wall_s,
            "jobs_per_s": self.jobs_per_s,
            "workflows": self.workflows,
            "request_ms": Summary.of(self.latencies).scaled(1000),
            "cpu_ms_per_job": {k: 1000 * v / self.jobs for k, v in self.cpu.items()},
        }


def jobs_of(tag: str, count: int) -> list[Job]:
    return [
        {"key": f"{tag}-{i}", "document_id": doc_id(tag, i), "actions": [add_item(f"{tag}-{i}")]}
        for i in range(count)
    ]


# One client's way of sending one item (a job or a batch of jobs), timed.
Send = Callable[[Any], Awaitable[float]]


async def clients(count: int, work: list[Any], sender: Callable[[], Send]) -> list[float]:
    """`count` clients, each with a sender of its own (an HTTP connection),
    taking `work` items in turn and waiting for each answer before taking
    the next; every answer's latency."""
    queue = list(reversed(work))
    latencies: list[float] = []

    async def client() -> None:
        send = sender()
        while queue:
            latencies.append(await send(queue.pop()))

    await asyncio.gather(*(client() for _ in range(count)))
    return latencies


def http_execute(url: str, seen: set[str], opened: list[Connection]) -> Send:
    conn = Connection(url)
    opened.append(conn)

    async def one(job: Job) -> float:
        t0 = time.perf_counter()
        status, body = await conn.post(
            f"/v1/documents/{job['document_id']}/actions?wait=true", {"actions": job["actions"]}
        )
        elapsed = time.perf_counter() - t0
        assert status == 200 and body["status"] == READ_READY, (status, body)
        seen.add(parse_job_id(body["id"])[0])
        return elapsed

    return one


def http_batches(url: str, seen: set[str], opened: list[Connection]) -> Send:
    conn = Connection(url)
    opened.append(conn)

    async def one(batch: list[Job]) -> float:
        t0 = time.perf_counter()
        status, body = await conn.post("/v1/batches?wait=true", {"jobs": batch})
        elapsed = time.perf_counter() - t0
        assert status == 200, (status, body)
        statuses = {j["status"] for j in body["jobs"].values()}
        assert statuses == {READ_READY}, statuses
        seen.add(body["batch_id"])
        return elapsed

    return one


def python_execute(reactor: Reactor, seen: set[str]) -> Send:
    async def one(job: Job) -> float:
        t0 = time.perf_counter()
        info = await reactor.execute(job["document_id"], "main", job["actions"])
        final = await reactor.wait_for_job(info.id)
        elapsed = time.perf_counter() - t0
        assert final.status is JobStatus.READ_READY, final
        seen.add(final.batch_id)
        return elapsed

    return one


def python_batches(reactor: Reactor, seen: set[str]) -> Send:
    async def one(batch: list[Job]) -> float:
        t0 = time.perf_counter()
        result = await reactor.execute_batch({"jobs": batch})
        finals = await asyncio.gather(*(reactor.wait_for_job(j.id) for j in result.jobs.values()))
        elapsed = time.perf_counter() - t0
        assert {f.status for f in finals} == {JobStatus.READ_READY}, finals
        seen.add(result.batch_id)
        return elapsed

    return one


async def measure(
    stack: BenchStack, served: Served, shape: str, which: str, tag: str, args: argparse.Namespace
) -> Run:
    """One run on fresh documents, created before the clock starts."""
    created = await stack.reactor.execute_batch({"jobs": create_jobs(tag, 20)})
    finals = await stack.reactor.wait_for_batch(created.batch_id)
    assert {f.status for f in finals} == {JobStatus.READ_READY}, finals
    jobs = jobs_of(tag, args.jobs)
    seen: set[str] = set()
    opened: list[Connection] = []
    reactor, url = stack.reactor, served.url
    work: list[Any]
    if shape == "execute":
        count, work = args.clients, jobs
        sender = (
            (lambda: http_execute(url, seen, opened))
            if which == "http"
            else (lambda: python_execute(reactor, seen))
        )
    else:
        size = args.batch_jobs
        count, work = args.batch_clients, [jobs[i : i + size] for i in range(0, len(jobs), size)]
        sender = (
            (lambda: http_batches(url, seen, opened))
            if which == "http"
            else (lambda: python_batches(reactor, seen))
        )
    meter = CpuMeter({**stack.cpu.pids, "serve": served.pid})
    meter.start()
    t0 = time.perf_counter()
    try:
        latencies = await clients(count, work, sender)
    finally:
        wall = time.perf_counter() - t0
        cpu = meter.stop()
        await asyncio.gather(*(c.close() for c in opened))
    return Run(shape, which, len(jobs), wall, latencies, cpu, len(seen))


async def bench(stack: BenchStack, args: argparse.Namespace) -> dict[str, Any]:
    info = await _results.server_info(stack.database_url, stack.temporal_label)
    runs: dict[tuple[str, str], list[Run]] = {(s, a): [] for s in SHAPES for a in APIS}
    async with reactor_serve(stack) as served:
        # Warm both paths (connections, caches, imports) on documents of their own.
        for which in APIS:
            warm = await measure(stack, served, "execute", which, f"warm{which}", _warmup(args))
            log.print(f"warm-up {which}: {warm.jobs_per_s:.0f} jobs/s")
        for rep in range(1, args.repeat + 1):
            for shape in SHAPES:
                for which in APIS:
                    run = await measure(
                        stack, served, shape, which, f"{shape[0]}{which[0]}{rep}", args
                    )
                    runs[(shape, which)].append(run)
                    log.print(
                        f"  {shape} via {which} ({rep}/{args.repeat}): "
                        f"{run.jobs_per_s:.0f} jobs/s in {run.wall_s:.1f} s"
                    )
    medians = {key: median(rs) for key, rs in runs.items()}
    return {
        "bench": "http_load",
        "machine": _results.machine(),
        "code": _results.code_info(),
        "server": info,
        "options": {
            "jobs": args.jobs,
            "clients": args.clients,
            "batch_jobs": args.batch_jobs,
            "batch_clients": args.batch_clients,
            "repeat": args.repeat,
        },
        "runs": [r.as_dict() for rs in runs.values() for r in rs],
        "medians": [medians[key].as_dict() for key in runs],
        "http_over_python": {
            shape: medians[(shape, "http")].jobs_per_s / medians[(shape, "python")].jobs_per_s
            for shape in SHAPES
        },
    }


def _warmup(args: argparse.Namespace) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), "jobs": min(args.jobs, 200)})


def median(runs: list[Run]) -> Run:
    """The median run by jobs/s (for an even count, the slower middle one)."""
    ordered = sorted(runs, key=lambda r: r.jobs_per_s)
    return ordered[(len(ordered) - 1) // 2]


def tables(result: dict[str, Any]) -> list[Table]:
    opts = result["options"]
    ratio = result["http_over_python"]
    rows = []
    for m in result["medians"]:
        req = m["request_ms"]
        cpu = m["cpu_ms_per_job"]
        rows.append(
            [
                m["shape"],
                LABELS[m["api"]],
                m["jobs"],
                m["workflows"],
                m["jobs_per_s"],
                f"{ratio[m['shape']]:.2f}×" if m["api"] == "http" else "",
                req["p50"],
                req["p99"],
                *(cpu.get(k, 0.0) for k in ("serve", "bench", "worker", "temporal", "postgres")),
            ]
        )
    throughput = Table(
        f"Jobs/s through the HTTP API and the Python API (median of {opts['repeat']}, "
        "runs interleaved)",
        [
            "shape",
            "API",
            "jobs",
            "workflows",
            "jobs/s",
            "HTTP/Python",
            "req p50 ms",
            "req p99 ms",
            "CPU ms/job: serve",
            "bench",
            "worker",
            "Temporal",
            "PostgreSQL",
        ],
        rows,
        caption=(
            f"execute: {opts['clients']} clients, one single-action job per request "
            f"(wait=true); batches: {opts['batch_clients']} clients, {opts['batch_jobs']} "
            "jobs per request (wait=true). HTTP: `reactor serve` (its worker in its process) "
            "over loopback, the bench process its clients; Python: the Reactor in the bench "
            "process and the worker process. Target: HTTP at least 0.8× the Python API."
        ),
    )
    return [throughput]


def main() -> None:
    def extra(p: argparse.ArgumentParser) -> None:
        p.add_argument("--jobs", type=int, default=1000, help="jobs per run")
        p.add_argument("--clients", type=int, default=32, help="concurrent execute clients")
        p.add_argument("--batch-jobs", type=int, default=100, help="jobs per batch request")
        p.add_argument("--batch-clients", type=int, default=4, help="concurrent batch clients")
        p.add_argument("--repeat", type=int, default=1, help="rounds of the four runs")

    args = parse_args(__doc__.splitlines()[0], extra)
    result = run_bench("http_load", lambda s: bench(s, args))
    _results.show(tables(result))
    if args.json:
        _results.emit_json(result)


if __name__ == "__main__":
    main_guard(main)
