"""The cost model of bench/throughput.py: where each run's CPU went, per
process of the stack, and what a job, an operation and a workflow cost,
from pairs of runs that differ in one of them only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from _runner import PhaseResult, PhaseRuns
from _tables import Table

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


def _split_rows(split: dict[str, Any], keys: tuple[str, ...]) -> list[list[Any]]:
    """A split's table rows: a process (or the whole stack), then `keys`."""
    return [
        [part if part != "stack" else "whole stack", *(v[k] for k in keys)]
        for part, v in split["parts"].items()
    ]


def cpu_split_table(split: dict[str, Any], cpus: int) -> Table:
    stack = split["parts"]["stack"]
    busy = split["s_busy_fraction"]
    budget = 1e6 * cpus * busy / 10_000
    return Table(
        "CPU per job and per operation (from b and s: same jobs and batches, 1 vs 10 actions)",
        ["process", "b µs/job", "s µs/job", "µs per operation", "µs per job, alone"],
        _split_rows(
            split, ("b_us_per_job", "s_us_per_job", "us_per_operation", "us_per_job_alone")
        ),
        caption=(
            f"per operation = (s − b) / {split['extra_operations_per_job']}; "
            f"a job of s costs the stack "
            f"{stack['us_per_job_alone']:,.0f} µs for being a job and "
            f"{stack['us_per_operation']:,.0f} µs per operation. At the {100 * busy:.0f}% of "
            f"{cpus} cores s kept busy, 10,000 operations/s leave {budget:,.0f} µs per "
            f"operation in all."
        ),
    )


def workflow_split_table(split: dict[str, Any]) -> Table:
    stack = split["parts"]["stack"]
    return Table(
        "CPU per workflow and per job (from a and b: the same jobs in "
        f"{split['a_workflows']:,} vs {split['b_workflows']:,} workflows)",
        ["process", "a µs/job", "b µs/job", "ms per workflow", "µs per job, alone"],
        _split_rows(split, ("a_us_per_job", "b_us_per_job", "ms_per_workflow", "us_per_job_alone")),
        caption=(
            "per workflow = (a − b) / (a's workflows − b's); a batch's workflow costs the "
            f"stack {stack['ms_per_workflow']:,.1f} ms whatever its size, a job "
            f"{stack['us_per_job_alone']:,.0f} µs. At "
            f"{split['b_jobs_per_workflow']:,.0f} jobs per batch the workflows are "
            f"{100 * split['b_workflow_share']:.0f}% of b's CPU. a's jobs travel in the "
            "workflow input, b's by reference: that difference is in both figures."
        ),
    )


def cpu_table(phases: list[dict[str, Any]], cpus: int, repeated: bool) -> Table:
    """Each phase's (median) run: CPU seconds per process tree, the machine's
    load meanwhile, and the worker's CPU per job."""
    rows = []
    for p in phases:
        cpu, system = p["cpu_s"], p.get("machine_cpu_pct") or {}
        worker = cpu.get("worker")
        rows.append(
            [
                p["phase"],
                p["wall_s"],
                worker,
                cpu.get("temporal"),
                cpu.get("postgres"),
                cpu.get("bench"),
                system.get("busy_pct"),
                system.get("iowait_pct"),
                system.get("other_cpu_s"),
                None if worker is None else 1000 * worker / p["jobs"],
            ]
        )
    return Table(
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
        rows,
    )
