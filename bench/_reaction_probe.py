"""Probes for bench/reaction_latency.py.

- `probe`: a reaction whose handler records the wall-clock time it started.
- `SignalProbeWorkflow`: the floor. A running workflow that, on each signal,
  runs a local activity recording the time: the same signal → workflow task →
  local activity hop a reaction takes, minus the reactor.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg  # noqa: E402
from temporalio import activity  # noqa: E402

from reactor.domain.document import Operation  # noqa: E402
from reactor.reactions.processor import ReactionContext, processor  # noqa: E402

SETUP = "CREATE TABLE IF NOT EXISTS bench_seen (kind text, ref text, at double precision)"


async def _seen(op: Operation, ctx: ReactionContext) -> None:
    at = time.time()
    assert ctx.reactor is not None
    async with ctx.reactor.db.pool.acquire() as conn:
        await conn.execute("INSERT INTO bench_seen VALUES ('reaction', $1, $2)", op.job_id, at)


probe = processor("latency-probe", _seen, action_types=["ADD_TODO_ITEM"])


@activity.defn(name="record_signal")
async def record_signal(ref: str) -> None:
    at = time.time()
    conn = await asyncpg.connect(os.environ["REACTOR_DATABASE_URL"])
    try:
        await conn.execute("INSERT INTO bench_seen VALUES ('signal', $1, $2)", ref, at)
    finally:
        await conn.close()


async def serve_signal_probe() -> None:
    from temporalio.worker import Worker

    from bench._signal_probe_workflow import SignalProbeWorkflow
    from reactor.runtime.temporal import connect

    client = await connect(os.environ["REACTOR_TEMPORAL_ADDRESS"])
    worker = Worker(
        client,
        task_queue=os.environ["REACTOR_TASK_QUEUE"],
        workflows=[SignalProbeWorkflow],
        activities=[record_signal],
    )
    await worker.run()


if __name__ == "__main__":
    asyncio.run(serve_signal_probe())
