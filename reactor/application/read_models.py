"""Custom read models, indexed exactly once.

A read model is any object with a `name` and

    async def index_operations(self, operations: list[OperationWithContext]) -> None

(and optionally `async def setup(self, conn)` to create its tables). The
coordinator feeds it the global log in visible order. Each call runs inside
one transaction (`context.tx`) that also advances the model's tracking row,
so output written through `context.tx` is exactly-once: a crash before
commit loses both, a retry redoes both. Read models run before a job is
READ_READY.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import asyncpg

from reactor.domain.document import Operation
from reactor.storage.database import Database
from reactor.storage.notify import READ_MODEL_CHANNEL
from reactor.storage.operation_store import OperationStore, Position

log = logging.getLogger("reactor.read_models")


@dataclass(frozen=True)
class OperationContext:
    document_type: str
    position: Position
    tx: asyncpg.Connection  # the transaction that also advances the tracking row


@dataclass(frozen=True)
class OperationWithContext:
    operation: Operation
    context: OperationContext


@runtime_checkable
class ReadModel(Protocol):
    name: str

    async def index_operations(self, operations: list[OperationWithContext]) -> None: ...


class ReadModelLagError(Exception):
    pass


class ReadModelCoordinator:
    """Dispatches the operation log to every registered read model."""

    def __init__(self, db: Database, read_models: Sequence[ReadModel], *, page: int = 500):
        names = [rm.name for rm in read_models]
        if len(set(names)) != len(names):
            raise ValueError(f"read model names must be unique: {names}")
        self.db = db
        self.read_models = list(read_models)
        self.page = page

    async def setup(self) -> None:
        async with self.db.pool.acquire() as conn:
            for rm in self.read_models:
                setup = getattr(rm, "setup", None)
                if setup is not None:
                    await setup(conn)
                await conn.execute(
                    "INSERT INTO reactor_read_model_tracking (name) VALUES ($1) "
                    "ON CONFLICT DO NOTHING",
                    rm.name,
                )

    async def catch_up(self, target: Position, *, timeout: float = 60.0) -> None:
        """Returns once every read model has indexed everything up to `target`."""
        if not self.read_models:
            return
        await asyncio.wait_for(
            asyncio.gather(*(self._until(rm, target) for rm in self.read_models)), timeout
        )

    async def _until(self, rm: ReadModel, target: Position) -> None:
        delay = 0.002
        while True:
            position = await self.drain_once(rm)
            if position >= target:
                return
            # An older transaction is still open (visibility horizon): wait.
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def drain_once(self, rm: ReadModel) -> Position:
        """Indexes at most one page; returns the read model's position."""
        async with self.db.pool.acquire() as conn:
            rows = await OperationStore.read_visible(
                conn, await self.position(rm.name, conn), self.page
            )
            async with conn.transaction():
                locked = await conn.fetchrow(
                    "SELECT last_tx::text::bigint AS tx, last_ordinal FROM "
                    "reactor_read_model_tracking WHERE name = $1 FOR UPDATE",
                    rm.name,
                )
                if locked is None:
                    await conn.execute(
                        "INSERT INTO reactor_read_model_tracking (name) VALUES ($1) "
                        "ON CONFLICT DO NOTHING",
                        rm.name,
                    )
                    return Position()
                current = Position(locked["tx"], locked["last_ordinal"])
                fresh = [(p, op) for p, op in rows if p > current]
                if len(fresh) != len(rows):
                    # Another drainer advanced meanwhile: re-read under the lock.
                    return current
                if not fresh:
                    return current
                types = await self._types(conn, {op.document_id for _, op in fresh})
                batch = [
                    OperationWithContext(
                        op, OperationContext(types.get(op.document_id, ""), pos, conn)
                    )
                    for pos, op in fresh
                ]
                await rm.index_operations(batch)
                last = fresh[-1][0]
                await conn.execute(
                    "UPDATE reactor_read_model_tracking SET last_tx = $2::text::xid8, "
                    "last_ordinal = $3, updated_at = now() WHERE name = $1",
                    rm.name,
                    str(last.tx_id),
                    last.ordinal,
                )
                await conn.execute(
                    "SELECT pg_notify($1, $2)",
                    READ_MODEL_CHANNEL,
                    f'{{"name":"{rm.name}","tx":{last.tx_id},"ordinal":{last.ordinal}}}',
                )
                return last

    async def position(self, name: str, conn: asyncpg.Connection | None = None) -> Position:
        async def fetch(c: asyncpg.Connection) -> Position:
            row = await c.fetchrow(
                "SELECT last_tx::text::bigint AS tx, last_ordinal FROM "
                "reactor_read_model_tracking WHERE name = $1",
                name,
            )
            return Position() if row is None else Position(row["tx"], row["last_ordinal"])

        if conn is not None:
            return await fetch(conn)
        async with self.db.pool.acquire() as c:
            return await fetch(c)

    @staticmethod
    async def _types(conn: asyncpg.Connection, ids: set[str]) -> dict[str, Any]:
        rows = await conn.fetch(
            "SELECT id, document_type FROM reactor_documents WHERE id = ANY($1)", list(ids)
        )
        return {r["id"]: r["document_type"] for r in rows}
