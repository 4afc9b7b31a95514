"""The global order of operations, as readers may safely consume it."""

from __future__ import annotations

from reactor.domain.document import Operation
from reactor.storage.database import Database
from reactor.storage.operation_store import OperationStore, Position


class OperationIndex:
    def __init__(self, db: Database):
        self.db = db

    async def read(self, after: Position, limit: int = 500) -> list[tuple[Position, Operation]]:
        """Operations after `after` in visible order: never one that a still
        open transaction could precede."""
        async with self.db.pool.acquire() as conn:
            return await OperationStore.read_visible(conn, after, limit)

    async def head(self) -> Position:
        async with self.db.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT tx_id::text::bigint AS tx, ordinal FROM reactor_operations "
                "WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot()) "
                "ORDER BY tx_id DESC, ordinal DESC LIMIT 1"
            )
        return Position() if row is None else Position(row["tx"], row["ordinal"])
