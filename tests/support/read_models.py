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


class FailingReadModel:
    """Raises on every delivery until a test sets `fixed`; then records what
    it indexes. `raises` is what it raises while broken, with `message`."""

    name = "failing"

    def __init__(
        self, raises: type[Exception] = RuntimeError, message: str = "projection broken"
    ) -> None:
        self.raises = raises
        self.message = message
        self.fixed = False
        self.calls = 0
        self.indexed: list[str] = []

    async def index_operations(self, operations: list[OperationWithContext]) -> None:
        self.calls += 1
        if not self.fixed:
            raise self.raises(self.message)
        self.indexed.extend(o.operation.id for o in operations)
