"""Read models for tests. CountingReadModel records every delivery, with no
deduplication of its own, so a duplicate delivery shows up as a count > 1."""

from __future__ import annotations

import asyncpg

from reactor.application.read_models import OperationWithContext


class CountingReadModel:
    name = "counting"

    async def setup(self, conn: asyncpg.Connection) -> None:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS test_rm_deliveries (op_id text NOT NULL, ordinal bigint)"
        )

    async def index_operations(self, operations: list[OperationWithContext]) -> None:
        tx = operations[0].context.tx
        await tx.executemany(
            "INSERT INTO test_rm_deliveries (op_id, ordinal) VALUES ($1, $2)",
            [(o.operation.id, o.operation.ordinal) for o in operations],
        )
