"""The codec-on side of a benchmark: a second worker process holding a fresh
payload key, on its own task queue, and a Reactor with the same key, next to
the stack's plaintext worker and Reactor. Both workers run through the whole
bench, so either side's runs see the other idle."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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
