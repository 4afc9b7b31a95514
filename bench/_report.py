"""Markdown tables from the benchmarks' `--json` lines, for bench/RESULTS.md.

python bench/throughput.py --json | tail -1 > /tmp/throughput.json
python bench/latency.py --json | tail -1 > /tmp/latency.json
python bench/read_cost.py --json | tail -1 > /tmp/read_cost.json
python bench/write_cost.py --json | tail -1 > /tmp/write_cost.json
python bench/_report.py /tmp/throughput.json /tmp/latency.json /tmp/read_cost.json /tmp/write_cost.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import _floors
import throughput as throughput_bench
import write_cost as write_cost_bench


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.{digits}f}"
        return f"{value:.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def md(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    align = ["---"] + ["---:"] * (len(columns) - 1)
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def throughput(data: dict[str, Any]) -> str:
    phases = data["phases"]
    main = md(
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
            "worker peak RSS MB",
        ],
        [
            [
                f"{p['phase']}. {p['label']}",
                p["jobs"],
                p["operations"],
                p["submit_s"],
                p["wall_s"],
                p["jobs_per_s"],
                p["operations_per_s"],
                p["latency_ms"]["p50"],
                p["latency_ms"]["p95"],
                p["latency_ms"]["p99"],
                p["worker_peak_rss_mb"],
            ]
            for p in phases
        ],
    )
    cpu = md(
        [
            "phase",
            "wall s",
            "worker CPU s",
            "temporal CPU s",
            "postgres CPU s",
            "bench client CPU s",
            "machine busy %",
            "iowait %",
            "other processes CPU s",
            "worker CPU ms/job",
        ],
        [
            [
                p["phase"],
                p["wall_s"],
                p["cpu_s"].get("worker"),
                p["cpu_s"].get("temporal"),
                p["cpu_s"].get("postgres"),
                p["cpu_s"].get("bench"),
                p.get("machine_cpu_pct", {}).get("busy_pct"),
                p.get("machine_cpu_pct", {}).get("iowait_pct"),
                p.get("machine_cpu_pct", {}).get("other_cpu_s"),
                1000 * p["cpu_s"]["worker"] / p["jobs"]
                if p["cpu_s"].get("worker") is not None
                else None,
            ]
            for p in phases
        ],
    )
    by_phase = {p["phase"]: p for p in phases}
    floors = md(
        _floors.COLUMNS,
        [_floors.table_row(by_phase[f["phase"]], f) for f in data.get("floors", [])],
    )
    v = data["verify"]
    check = (
        f"Correctness: {v['global_operations']:,} global operations in `reactor_operations` for "
        f"{v['expected_global_operations']:,} submitted actions; sum of global revisions "
        f"{v['sum_of_global_revisions']:,}; {v['document_operations']} CREATE_DOCUMENT operations; "
        f"{v['duplicated_actions']} duplicated actions: {'OK' if v['ok'] else 'MISMATCH'}. "
        f"Worker RSS: {data['worker_idle_rss_mb']:.0f} MB idle, {data['worker_peak_rss_mb']:.0f} MB peak."
    )
    parts = [main, cpu] + ([floors] if data.get("floors") else [])
    split = data.get("cpu_split")
    if split:
        parts.append(md(throughput_bench.CPU_SPLIT_COLUMNS, throughput_bench.cpu_split_rows(split)))
    per_workflow = data.get("workflow_split")
    if per_workflow:
        parts.append(
            md(
                throughput_bench.WORKFLOW_SPLIT_COLUMNS,
                throughput_bench.workflow_split_rows(per_workflow),
            )
        )
    return "\n\n".join([*parts, check])


def latency(data: dict[str, Any]) -> str:
    main = md(
        ["mode", "n", "p50 ms", "p95 ms", "p99 ms", "mean ms", "p50 / p50 noop", "p99 / p99 noop"],
        [
            [
                m["label"],
                m["n"],
                m["p50"],
                m["p95"],
                m["p99"],
                m["mean"],
                f"{m['p50_over_noop_p50']:.2f}×",
                f"{m['p99_over_noop_p99']:.2f}×",
            ]
            for m in data["modes_ms"]
        ],
    )
    split = data["reactor_split_ms"]
    total = sum(s["mean"] for s in split.values())
    labels = {
        "execute": "execute(): validate, store batch, start workflow",
        "result": "wait_for_job: read-ready announcement or workflow result",
        "query": "job-table query on the closed workflow",
    }
    steps = md(
        ["step", "p50 ms", "p95 ms", "mean ms", "share of mean"],
        [
            [labels[k], s["p50"], s["p95"], s["mean"], f"{100 * s['mean'] / total:.0f}%"]
            for k, s in split.items()
        ],
    )
    parts = [main, steps]
    announced = data.get("announced")
    if announced:
        total_jobs = announced["yes"] + announced["no"]
        parts.append(
            f"`wait_for_job` answered from the commit's read-ready announcement: "
            f"{announced['yes']} of {total_jobs} jobs."
        )
    return "\n\n".join(parts)


def read_cost(data: dict[str, Any]) -> str:
    return md(
        [
            "global ops",
            "log MB",
            "grow ops/s (direct)",
            "get cold ms",
            "get warm p50 ms",
            "get warm p99 ms",
            "rebuild head (never analyzed) ms",
            "… after ANALYZE ms",
            "rebuild N-1 ms",
            "replay all, no keyframes ms",
        ],
        [
            [
                r["operations"],
                r["operations_table_mb"],
                r["grow"]["operations_per_s"],
                r["get_cold_ms"],
                r["get_warm_ms"]["p50"],
                r["get_warm_ms"]["p99"],
                r["rebuild_head_ms"]["p50"],
                r.get("rebuild_head_after_analyze_ms", {}).get("p50"),
                r["rebuild_worst_ms"]["p50"],
                r["rebuild_full_ms"],
            ]
            for r in data["sizes"]
        ],
    )


def write_cost(data: dict[str, Any]) -> str:
    settings = ", ".join(f"{k} {v}" for k, v in data["settings"].items())
    return (
        md(write_cost_bench.COLUMNS, write_cost_bench.rows(data))
        + f"\n\n{data['jobs']:,} jobs per statement on {write_cost_bench.CONNECTIONS} "
        f"connections, median of {data['repeat']} ({settings})."
    )


RENDER = {
    "throughput": throughput,
    "latency": latency,
    "read_cost": read_cost,
    "write_cost": write_cost,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "paths", nargs="+", type=Path, help="files whose last line is a --json line"
    )
    args = parser.parse_args()
    for path in args.paths:
        data = json.loads(path.read_text().strip().splitlines()[-1])
        print(f"### {data['bench']}\n\n{RENDER[data['bench']](data)}\n")


if __name__ == "__main__":
    main()
