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
from typing import Any

import _codec
import _cost
import _floors
import _results
from _results import log
from _runner import SUBMIT_CONCURRENCY, WAIT_CONCURRENCY, run_all
from _stack import BenchStack, main_guard, parse_args, run_bench
from _stats import mb
from _tables import Table, cell
from _workloads import DOCS, PHASE_ORDER, SUSTAINED_DOCS

FLOOR_PHASES = "bds"  # the shapes the targets name: 100-job batches, 10-action jobs


async def bench(stack: BenchStack, args: argparse.Namespace) -> dict[str, Any]:
    if not args.codec:
        return await _bench(stack, args)
    async with _codec.encrypted(stack) as keyed:
        return await _bench(stack, args, keyed)


async def _bench(
    stack: BenchStack, args: argparse.Namespace, keyed: BenchStack | None = None
) -> dict[str, Any]:
    info = await _results.server_info(stack.database_url, stack.temporal_label)
    log.print(
        f"worker idle RSS {mb(stack.worker_idle_rss):.0f} MB; every run on fresh "
        f"documents ({DOCS}; {SUSTAINED_DOCS} for s) with {args.preload:,} items preloaded "
        f"each; {args.repeat} run(s) per phase"
    )
    runs = await run_all(stack, args, keyed)
    return {
        "bench": "throughput",
        "machine": _results.machine(),
        "code": _results.code_info(),
        "server": info,
        "scale": args.scale,
        "repeat": args.repeat,
        "preload_items": args.preload,
        "wait_concurrency": args.wait_concurrency,
        "phases": [pr.as_dict() for pr in runs.phases],
        "floors": [f.as_dict() for f in runs.floors],
        "worker_idle_rss_mb": mb(stack.worker_idle_rss),
        "worker_peak_rss_mb": mb(stack.rss.peak if stack.rss is not None else 0),
        "worker_rss_samples": stack.rss.samples if stack.rss is not None else 0,
        "cpu_split": _cost.cpu_split(runs.phases),
        "workflow_split": _cost.workflow_split(runs.phases),
        "verify": runs.check,
        "codec": _codec.compare(runs.codec_pairs) if runs.codec_pairs else None,
    }


def tables(result: dict[str, Any]) -> list[Table]:
    """The tables of a result (this script's JSON), in the order printed."""
    phases = result["phases"]
    repeat = result["repeat"]
    repeated = repeat > 1
    cpus = result["machine"]["cpus"] or 1
    shown = [
        _main_table(result, repeated),
        _cost.cpu_table(phases, cpus, repeated),
    ]
    if result.get("cpu_split"):
        shown.append(_cost.cpu_split_table(result["cpu_split"], cpus))
    if result.get("workflow_split"):
        shown.append(_cost.workflow_split_table(result["workflow_split"]))
    shown.append(_timeline_table(phases, repeated))
    if result.get("floors"):
        shown.append(_floors.table(phases, result["floors"], repeated))
    if result.get("codec"):
        shown.append(_codec.table(result["codec"]))
    return shown


def _main_table(result: dict[str, Any], repeated: bool) -> Table:
    repeat = result["repeat"]
    rows = []
    for p in result["phases"]:
        latency = p["latency_ms"]
        row: list[Any] = [
            f"{p['phase']}. {p['label']}",
            p["jobs"],
            p["operations"],
            p["submit_s"],
            p["wall_s"],
            p["jobs_per_s"],
            p["operations_per_s"],
        ]
        if repeated:
            low, high = p["jobs_per_s_range"]
            row.append(f"{cell(low)}–{cell(high)}")
        row += [latency["p50"], latency["p95"], latency["p99"], p["worker_peak_rss_mb"]]
        rows.append(row)
    columns = ["phase", "jobs", "ops", "submit s", "wall s", "jobs/s", "ops/s"]
    if repeated:
        columns.append("jobs/s range")
    columns += ["p50 ms", "p95 ms", "p99 ms", "worker RSS MB"]
    runs_note = (
        f"median of {repeat} runs per phase by jobs/s"
        + (" (even count: the slower middle run)" if repeat % 2 == 0 else "")
        + "; range = min–max over the runs. "
        if repeated
        else ""
    )
    return Table(
        "Throughput (submit → READ_READY via wait_for_batch)",
        columns,
        rows,
        caption=(
            f"{runs_note}Every run on fresh documents ({DOCS}; {SUSTAINED_DOCS} in s), preloaded "
            f"with {result['preload_items']:,} todo items each (not measured). "
            f"latency = the job's batch: submit start → wait_for_batch returned; "
            f"{SUBMIT_CONCURRENCY} submissions and "
            f"{result.get('wait_concurrency', WAIT_CONCURRENCY)} waits in flight at most. "
            f"Worker RSS: idle {result['worker_idle_rss_mb']:.0f} MB, peak "
            f"{result['worker_peak_rss_mb']:.0f} MB over the run "
            f"({result.get('worker_rss_samples', 0)} samples, 50 ms)."
        ),
    )


def _timeline_table(phases: list[dict[str, Any]], repeated: bool) -> Table:
    rows = []
    for p in phases:
        tl = p["commit_timeline"]
        first, last = tl["first_commit_s"], tl["last_commit_s"]
        rows.append(
            [
                p["phase"],
                p["wall_s"],
                first,
                None if first is None or last is None else last - first,
                tl["report_after_last_commit_s"],
                p["jobs_per_s"],
                tl["steady_jobs_per_s"],
                p["operations_per_s"],
                tl["steady_operations_per_s"],
            ]
        )
    return Table(
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
        rows,
        caption=(
            "first commit = after the phase's first submission (validation, storage, workflow "
            "start, first activity); steady = rate over the middle 80% of the commits, "
            "ramp-up and tail excluded; the end-to-end jobs/s and ops/s are the measure."
        ),
    )


def correctness(check: dict[str, Any], *, markup: bool) -> str:
    """The operation log counted against everything submitted."""
    verdict = "OK" if check["ok"] else "MISMATCH"
    if markup:
        verdict = f"[green]{verdict}[/]" if check["ok"] else f"[red]{verdict}[/]"
    return (
        f"correctness: {check['global_operations']:,} global operations in reactor_operations, "
        f"{check['expected_global_operations']:,} submitted "
        f"({check['measured_operations']:,} measured + {check['preload_operations']:,} "
        f"preload); sum of document revisions {check['sum_of_global_revisions']:,}; "
        f"{check['document_operations']} CREATE_DOCUMENT operations "
        f"({check['expected_document_operations']} expected: one per document of "
        f"{check['runs']} runs and {check['floor_runs']} floor runs); "
        f"{check['duplicated_actions']} duplicated actions: {verdict}"
    )


def _at_least(low: int) -> Any:
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}")
        return value

    return parse


def _options(p: argparse.ArgumentParser) -> None:
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


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], _options)
    result = run_bench("throughput", lambda s: bench(s, args))
    _results.show(tables(result))
    _results.out.print(correctness(result["verify"], markup=True))
    if args.json:
        _results.emit_json(result)
    if not result["verify"]["ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main_guard(main)
