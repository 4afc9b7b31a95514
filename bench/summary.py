"""The README's performance table from one command: runs the throughput
benchmark's phases e, b and s, the latency benchmark and the sync benchmark
(each on its own stack, one after the other) and prints their headline
figures as one table, for the terminal and, with --markdown, as the README
shows it.

    .venv/bin/python bench/summary.py [--markdown] [--n 200] [--no-sync]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from _results import log, out
from _tables import Table, to_markdown, to_rich

HERE = Path(__file__).resolve().parent


def run(script: str, *args: str) -> dict[str, Any]:
    """A benchmark's --json result; its progress goes to this stderr."""
    log.print(f"[dim]running bench/{script} {' '.join(args)}…[/dim]")
    done = subprocess.run(
        [sys.executable, str(HERE / script), *args, "--json"],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def summary(
    throughput: dict[str, Any], latency: dict[str, Any], sync: dict[str, Any] | None = None
) -> Table:
    phases = {p["phase"]: p for p in throughput["phases"]}
    modes = {m["mode"]: m for m in latency["modes_ms"]}
    rows: list[list[Any]] = []
    for mode, label in (
        ("reactor", "one `execute()` to READ_READY, p50 / p99"),
        ("http", "one `POST …/actions?wait=true` over HTTP, p50 / p99"),
        ("noop", "a no-op Temporal workflow's round trip (the floor), p50 / p99"),
    ):
        if mode in modes:
            m = modes[mode]
            rows.append([label, f"{m['p50']:.1f} / {m['p99']:.1f} ms"])
    for phase, label, key, unit in (
        ("e", "2,000 concurrent `execute()` calls", "jobs_per_s", "jobs/s"),
        ("b", "20 batches of 100 jobs", "jobs_per_s", "jobs/s"),
        ("s", "2,000 jobs of 10 actions, in batches of 100", "operations_per_s", "operations/s"),
    ):
        if phase in phases:
            rows.append([label, f"{phases[phase][key]:,.0f} {unit}"])
    if sync is not None:
        lag = sync["lag_ms"]["ab"]
        rows.append(
            [
                "sync lag: READ_READY on one reactor → readable on the other, p50 / p99",
                f"{lag['p50']:.1f} / {lag['p99']:.1f} ms",
            ]
        )
        push = next(t for t in sync["throughput"] if t["direction"] == "A→B")
        rows.append(
            [
                f"sync of {push['operations']:,} operations to an empty reactor",
                f"{push['operations_per_s']:,.0f} operations/s",
            ]
        )
    machine = throughput["machine"]
    return Table(
        "Performance",
        ["workload", "result"],
        rows,
        caption=f"{machine['cpus']} cores shared by PostgreSQL, the Temporal dev server, "
        "the worker and the client",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
    parser.add_argument("--n", type=int, default=200, help="latency rounds (default 200)")
    parser.add_argument("--no-sync", action="store_true", help="leave out bench/sync.py")
    args = parser.parse_args()
    throughput = run("throughput.py", "--phases", "ebs", "--floors", "")
    latency = run("latency.py", "--n", str(args.n))
    sync = None if args.no_sync else run("sync.py", "--rewinds", "0", "--repeats", "1")
    table = summary(throughput, latency, sync)
    if args.markdown:
        print(to_markdown(table))
    else:
        out.print(to_rich(table))


if __name__ == "__main__":
    main()
