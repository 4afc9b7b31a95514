"""The codec-on side of a benchmark: a second worker process holding a fresh
payload key, on its own task queue, and a Reactor with the same key, next to
the stack's plaintext worker and Reactor. Both workers run through the whole
bench, so either side's runs see the other idle."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import _stack
from _stack import BenchStack, CpuMeter, RssSampler

from reactor.api.builder import ReactorBuilder
from reactor.models import BUILTIN_MODELS
from reactor.runtime.codec import generate_key


@asynccontextmanager
async def encrypted(stack: BenchStack) -> AsyncIterator[BenchStack]:
    """`stack` with its worker, Reactor and CPU meter swapped for codec-on ones."""
    key = generate_key()
    task_queue = f"{stack.task_queue}-codec"
    log_path = stack.folder / "worker-codec.log"
    proc = _stack._spawn_worker(
        stack.folder,
        stack.folder / "code",
        stack.database_url,
        stack.temporal_address,
        task_queue,
        log_path,
        extra_env={"REACTOR_PAYLOAD_KEY": key},
    )
    rss = RssSampler(proc.pid).start()
    try:
        await _stack._wait_worker_ready(proc, log_path)
        reactor = await (
            ReactorBuilder()
            .with_document_models(BUILTIN_MODELS)
            .with_database(stack.database_url)
            .with_temporal(stack.temporal_address, task_queue=task_queue, payload_key=key)
            .with_migration_strategy("none")
            .build()
        )
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
        await asyncio.to_thread(_stack._stop_process, proc)
        rss.stop()


PARTS = ("worker", "bench", "temporal", "postgres")


def compare(pairs: list[tuple[Any, Any]]) -> tuple[list[list[Any]], dict[str, Any]]:
    """Per phase, over its (codec-off, codec-on) run pairs: jobs/s and CPU
    milliseconds per job per process, and what the codec adds per job."""
    by_phase: dict[str, list[tuple[Any, Any]]] = {}
    for off, on in pairs:
        by_phase.setdefault(off.phase.name, []).append((off, on))
    rows: list[list[Any]] = []
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
        rows.append(
            [
                name,
                len(runs),
                side["off"]["jobs_per_s"],
                side["on"]["jobs_per_s"],
                *(f"{side['off'][p]:.2f} → {side['on'][p]:.2f}" for p in ("worker", "bench")),
                f"{side['off']['total']:.2f} → {side['on']['total']:.2f}",
                delta["worker"],
                delta["bench"],
                delta["total"],
            ]
        )
    return rows, summary


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
