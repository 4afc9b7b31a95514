"""Processors for the reaction tests, importable by worker subprocesses via
REACTOR_PROCESSORS=tests.support.reactions:<name>."""

from __future__ import annotations

import asyncio
import os
import time

from reactor.domain.document import Operation
from reactor.reactions.processor import ReactionContext, processor

SETUP = """
CREATE TABLE IF NOT EXISTS test_reaction_calls (
    reaction text, op_id text, document_id text, pid int, at double precision
)
"""


async def _record(op: Operation, ctx: ReactionContext) -> None:
    assert ctx.reactor is not None
    async with ctx.reactor.db.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO test_reaction_calls VALUES ($1, $2, $3, $4, $5)",
            ctx.reaction,
            op.id,
            op.document_id,
            os.getpid(),
            time.time(),
        )


async def _record_slowly(op: Operation, ctx: ReactionContext) -> None:
    await _record(op, ctx)
    await asyncio.sleep(0.1)


async def _fail_on_poison(op: Operation, ctx: ReactionContext) -> None:
    if op.document_id == "poison":
        raise RuntimeError(f"cannot handle {op.action.type} on poison")
    await _record(op, ctx)


recording = processor("recording", _record, action_types=["ADD_TODO_ITEM"])
slow = processor("slow", _record_slowly, action_types=["ADD_TODO_ITEM"], lease_seconds=3.0)
failing = processor(
    "failing", _fail_on_poison, action_types=["ADD_TODO_ITEM"], max_attempts=3, backoff_base=0.05
)
