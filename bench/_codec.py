"""The codec-on side of a benchmark: a second worker process holding a fresh
payload key, on its own task queue, and a Reactor with the same key, next to
the stack's plaintext worker and Reactor. Both workers run through the whole
bench, so either side's runs see the other idle."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from _metering import CpuMeter, RssSampler
from _stack import BenchStack, build_reactor, spawn_worker, stop_worker, wait_ready
from _tables import Table

from reactor.runtime.codec import generate_key


@asynccontextmanager
async def encrypted(stack: BenchStack) -> AsyncIterator[BenchStack]:
    """`stack` with its worker, Reactor and CPU meter swapped for codec-on ones."""
    key = generate_key()
    task_queue = f"{stack.task_queue}-codec"
    log_path = stack.folder / "worker-codec.log"
    proc = spawn_worker(
        stack.folder,
        stack.database_url,
        stack.temporal_address,
        task_queue,
        log_path,
        extra_env={"REACTOR_PAYLOAD_KEY": key},
    )
    rss = RssSampler(proc.pid).start()
    try:
        await wait_ready(proc, log_path)
        reactor = await build_reactor(stack.database_url, stack.temporal_address, task_queue, key)
        try:
            yield dataclasses.replace(
                stack,
                task_queue=task_queue,
                reactor=reactor,
                worker=proc,
                worker_log=log_path,
                rss=rss,
                cpu=CpuMeter({**stack.cpu.pids, "worker": proc.pid}),
            )
        finally:
            await reactor.close()
    finally:
        await stop_worker(proc)
        rss.stop()


PARTS = ("worker", "bench", "temporal", "postgres")


def compare(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    """Per phase, over its (codec-off, codec-on) run pairs: jobs/s and CPU
    milliseconds per job per process, and what the codec adds per job (µs)."""
    by_phase: dict[str, list[tuple[Any, Any]]] = {}
    for off, on in pairs:
        by_phase.setdefault(off.phase.name, []).append((off, on))
    summary: dict[str, Any] = {}
    for name, runs in by_phase.items():
        side: dict[str, dict[str, float]] = {}
        for label, index in (("off", 0), ("on", 1)):
            chosen = [r[index] for r in runs]
            jobs = sum(r.phase.jobs for r in chosen)
            wall = sum(r.wall_s for r in chosen)
            cpu = {p: sum(r.cpu.get(p, 0.0) for r in chosen) * 1000 / jobs for p in PARTS}
            side[label] = {"jobs_per_s": jobs / wall, **cpu, "total": sum(cpu.values())}
        delta = {p: 1000 * (side["on"][p] - side["off"][p]) for p in (*PARTS, "total")}
        summary[name] = {"runs": len(runs), "off_ms_per_job": side["off"]} | {
            "on_ms_per_job": side["on"],
            "codec_us_per_job": delta,
        }
    return summary


COLUMNS = [
    "phase",
    "runs",
    "jobs/s off",
    "jobs/s on",
    "worker ms/job",
    "client ms/job",
    "all ms/job",
    "Δ worker µs/job",
    "Δ client µs/job",
    "Δ all µs/job",
]


def table(summary: dict[str, Any]) -> Table:
    rows: list[list[Any]] = []
    for name, phase in summary.items():
        off, on, delta = phase["off_ms_per_job"], phase["on_ms_per_job"], phase["codec_us_per_job"]
        rows.append(
            [
                name,
                phase["runs"],
                off["jobs_per_s"],
                on["jobs_per_s"],
                *(f"{off[p]:.2f} → {on[p]:.2f}" for p in ("worker", "bench", "total")),
                delta["worker"],
                delta["bench"],
                delta["total"],
            ]
        )
    return Table(
        "Encrypted payloads (AES-GCM codec): the same jobs, codec off → on",
        COLUMNS,
        rows,
        caption=(
            "Each codec-off run followed by the same jobs on fresh documents, through a "
            "second worker and a Reactor holding a payload key; CPU per job summed over "
            "the runs; Δ = on − off per job (client = this process: encrypting inputs, "
            "decrypting results)."
        ),
    )
