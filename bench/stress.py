"""Stress runs of the fault suite: many batches, each through one fault,
against one embedded stack that this script kills and restarts, with several
worker processes.

    python bench/stress.py [--json] [--runs 9] [--jobs 600] [--actions 30]
                           [--faults worker-kill,postgres-restart,temporal-restart]
                           [--workers 2] [--down 2.0]

Each run: a fresh database and task queue, `--workers` worker processes
(`python worker.py` of this tree), `--jobs` documents
created, then one batch of `--jobs` jobs (one per document, `--actions`
ADD_TODO_ITEM each, chunks of 150: regular heartbeating activities). Once a
tenth of its jobs committed, the run's fault (taken from `--faults` in turn):

- worker-kill: SIGKILL of one worker, then a replacement started;
- postgres-restart: PostgreSQL stopped (fast) and started `--down` s later on
  the same data directory and socket;
- temporal-restart: the Temporal dev server SIGKILLed and started `--down` s
  later on its state file and port.

Then the batch must finish, and the log is checked (tests/support/log_checks.py):
lost (a successful job's operations missing or misplaced), duplicated (an
action written twice), stuck (a job not ended when the batch should have).
Time to recover: from the fault to the first job committed (or the batch
closing) once the service was back. Max attempt: the highest attempt of any
chunk's activity in the batch's history (a chunk re-run after the fault).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import _results
from _metering import background_load
from _results import log
from _stack import compile_code, main_guard, parse_args
from _stats import Summary
from _tables import Table

from tests.support.faults import FAULTS, FaultRun, FaultStack, run_fault


def extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--jobs", type=int, default=600, help="jobs (= documents) per run")
    parser.add_argument("--actions", type=int, default=30, help="actions per job")
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated, in turn")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--down", type=float, default=2.0, help="seconds a service stays down")
    parser.add_argument("--timeout", type=float, default=300.0, help="per batch, seconds")


async def stress(args: argparse.Namespace, stack: FaultStack) -> list[FaultRun]:
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    for fault in faults:
        if fault not in FAULTS:
            raise SystemExit(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
    runs: list[FaultRun] = []
    for n in range(args.runs):
        fault = faults[n % len(faults)]
        log.print(f"run {n + 1}/{args.runs}: {fault}, {args.jobs} jobs × {args.actions} actions")
        run = await run_fault(
            stack,
            fault,
            jobs=args.jobs,
            actions=args.actions,
            logs=stack.folder / f"run-{n}",
            workers=args.workers,
            down_s=args.down,
            finish_timeout=args.timeout,
        )
        if not run.report.ok:
            log.print(f"[red]run {n + 1}: {run.report.describe()}[/]")
        runs.append(run)
    return runs


# The counts both tables show, in the order of their columns.
COUNTED = ["jobs", "faults injected", "lost", "duplicated", "stuck", "failed"]


def run_dict(r: FaultRun) -> dict[str, Any]:
    return {
        "fault": r.fault,
        "jobs": r.jobs,
        "actions": r.actions,
        "injected": r.injected,
        "applied_at_fault": r.applied_at_fault,
        "recover_s": r.recover_s,
        "wall_s": r.wall_s,
        "lost": r.report.lost,
        "duplicated": r.report.duplicated,
        "stuck": r.report.stuck,
        "failed": r.report.failed,
        "max_attempt": r.max_attempt,
        "problems": r.report.problems,
    }


def tables(result: dict[str, Any]) -> list[Table]:
    """The tables of a result (this script's JSON)."""
    runs = result["runs"]
    by_run = [
        [
            n + 1,
            r["fault"],
            r["jobs"],
            int(r["injected"]),
            r["lost"],
            r["duplicated"],
            r["stuck"],
            r["failed"],
            r["max_attempt"],
            r["recover_s"],
            r["wall_s"],
        ]
        for n, r in enumerate(runs)
    ]
    by_fault = []
    for fault in sorted({r["fault"] for r in runs if r["fault"] is not None}) + ["all"]:
        of = [r for r in runs if fault in ("all", r["fault"])]
        recover = Summary.of([r["recover_s"] for r in of if r["recover_s"] is not None])
        by_fault.append(
            [
                fault,
                len(of),
                sum(r["jobs"] for r in of),
                sum(int(r["injected"]) for r in of),
                *(sum(r[k] for r in of) for k in ("lost", "duplicated", "stuck", "failed")),
                recover.p50,
                recover.max,
            ]
        )
    return [
        Table(
            "stress runs",
            ["run", "fault", *COUNTED, "max attempt", "recover (s)", "wall (s)"],
            by_run,
        ),
        Table(
            f"by fault ({len(runs)} runs, {result['wall_s']:.0f} s)",
            ["fault", "runs", *COUNTED, "recover p50 (s)", "recover max (s)"],
            by_fault,
            caption="recover: from the fault to the first job committed (or the batch "
            "closing) once the service was back",
        ),
    ]


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], extra)
    folder = Path(tempfile.mkdtemp(prefix="rxstress-"))
    compile_code()
    _results.note_background(background_load())
    stack = FaultStack(folder)
    started = time.monotonic()
    try:
        log.print("starting PostgreSQL and the Temporal dev server…")
        stack.start()
        runs = asyncio.run(stress(args, stack))
    finally:
        stack.stop()
        if not os.environ.get("BENCH_KEEP_STATE"):
            shutil.rmtree(folder, ignore_errors=True)
        else:
            log.print(f"state kept in {folder}")
    result = {
        "bench": "stress",
        "args": vars(args),
        "machine": _results.machine(),
        "code": _results.code_info(),
        "wall_s": time.monotonic() - started,
        "runs": [run_dict(r) for r in runs],
    }
    _results.show(tables(result))
    if args.json:
        _results.emit_json(result)
    if not all(r.report.ok for r in runs):
        raise SystemExit(1)


if __name__ == "__main__":
    main_guard(main)
