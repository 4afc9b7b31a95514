"""Reaction bookkeeping in PostgreSQL: the feed scan that discovers streams,
leases claimed with FOR UPDATE SKIP LOCKED, and per-stream watermarks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from reactor.domain.document import Operation
from reactor.reactions.processor import Processor
from reactor.storage.database import Database
from reactor.storage.operation_store import _COLUMNS, OperationStore, Position, row_to_operation


@dataclass(frozen=True)
class Claim:
    document_id: str
    done: Position
    head: Position
    attempts: int


@dataclass(frozen=True)
class StreamState:
    name: str
    document_id: str
    pending: bool
    attempts: int
    blocked: bool
    last_error: str | None
    leased_by: str | None
    lease_until: datetime | None
    retry_at: datetime | None


CLAIM = """
UPDATE reactor_reaction_streams s
SET leased_by = $2, lease_until = now() + make_interval(secs => $3)
FROM (
    SELECT document_id FROM reactor_reaction_streams
    WHERE name = $1 AND NOT blocked
      AND (head_tx, head_ordinal) > (done_tx, done_ordinal)
      AND (lease_until IS NULL OR lease_until < now())
      AND (retry_at IS NULL OR retry_at <= now())
    ORDER BY head_tx, head_ordinal
    LIMIT $4
    FOR UPDATE SKIP LOCKED
) c
WHERE s.name = $1 AND s.document_id = c.document_id
RETURNING s.document_id, s.done_tx::text::bigint AS done_tx, s.done_ordinal,
          s.head_tx::text::bigint AS head_tx, s.head_ordinal, s.attempts
"""

DISCOVER = """
INSERT INTO reactor_reaction_streams (name, document_id, head_tx, head_ordinal)
SELECT $1, d, t::text::xid8, o FROM unnest($2::text[], $3::text[], $4::bigint[]) AS u(d, t, o)
ON CONFLICT (name, document_id) DO UPDATE
SET head_tx = EXCLUDED.head_tx, head_ordinal = EXCLUDED.head_ordinal
WHERE (EXCLUDED.head_tx, EXCLUDED.head_ordinal)
      > (reactor_reaction_streams.head_tx, reactor_reaction_streams.head_ordinal)
"""


class ReactionStore:
    def __init__(self, db: Database):
        self.db = db

    async def ensure(self, name: str) -> None:
        async with self.db.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO reactor_reactions (name) VALUES ($1) ON CONFLICT DO NOTHING", name
            )

    async def scan(self, proc: Processor, page: int = 1000) -> int:
        """Moves the reaction's feed forward over visible operations, recording
        matching ones as stream heads. Returns how many operations it passed
        (0 also when another worker is scanning)."""
        async with self.db.pool.acquire() as conn:
            start = await self._feed(conn, proc.name)
            rows = await OperationStore.read_visible(conn, start, page)
            if not rows:
                return 0
            async with conn.transaction():
                locked = await conn.fetchrow(
                    "SELECT feed_tx::text::bigint AS tx, feed_ordinal FROM reactor_reactions "
                    "WHERE name = $1 FOR UPDATE SKIP LOCKED",
                    proc.name,
                )
                if locked is None or Position(locked["tx"], locked["feed_ordinal"]) != start:
                    return 0
                types = await _types(conn, {op.document_id for _, op in rows})
                heads: dict[str, Position] = {}
                for pos, op in rows:
                    if proc.matches(op, types.get(op.document_id, "")):
                        heads[op.document_id] = pos
                if heads:
                    docs = list(heads)
                    await conn.execute(
                        DISCOVER,
                        proc.name,
                        docs,
                        [str(heads[d].tx_id) for d in docs],
                        [heads[d].ordinal for d in docs],
                    )
                last = rows[-1][0]
                await conn.execute(
                    "UPDATE reactor_reactions SET feed_tx = $2::text::xid8, feed_ordinal = $3, "
                    "updated_at = now() WHERE name = $1",
                    proc.name,
                    str(last.tx_id),
                    last.ordinal,
                )
            return len(rows)

    async def claim(self, name: str, owner: str, lease_seconds: float, limit: int) -> list[Claim]:
        async with self.db.pool.acquire() as conn:
            rows = await conn.fetch(CLAIM, name, owner, lease_seconds, limit)
        return [
            Claim(
                r["document_id"],
                Position(r["done_tx"], r["done_ordinal"]),
                Position(r["head_tx"], r["head_ordinal"]),
                r["attempts"],
            )
            for r in rows
        ]

    @staticmethod
    async def pending(
        conn: asyncpg.Connection, document_id: str, after: Position, upto: Position
    ) -> list[tuple[Position, Operation]]:
        rows = await conn.fetch(
            f"SELECT tx_id::text::bigint AS tx, {_COLUMNS} FROM reactor_operations "
            "WHERE document_id = $1 AND (tx_id, ordinal) > ($2::text::xid8, $3) "
            "AND (tx_id, ordinal) <= ($4::text::xid8, $5) ORDER BY tx_id, ordinal",
            document_id,
            str(after.tx_id),
            after.ordinal,
            str(upto.tx_id),
            upto.ordinal,
        )
        return [(Position(r["tx"], r["ordinal"]), row_to_operation(r)) for r in rows]

    @staticmethod
    async def ack(
        conn: asyncpg.Connection,
        name: str,
        document_id: str,
        owner: str,
        pos: Position,
        lease_seconds: float,
    ) -> bool:
        """Advances the watermark and renews the lease (progress keeps a lease
        healthy), only while `owner` still holds it."""
        return bool(
            await conn.fetchval(
                "UPDATE reactor_reaction_streams SET done_tx = $4::text::xid8, done_ordinal = $5, "
                "attempts = 0, retry_at = NULL, last_error = NULL, "
                "lease_until = now() + make_interval(secs => $6) "
                "WHERE name = $1 AND document_id = $2 AND leased_by = $3 AND lease_until > now() "
                "RETURNING true",
                name,
                document_id,
                owner,
                str(pos.tx_id),
                pos.ordinal,
                lease_seconds,
            )
        )

    async def fail(
        self, proc: Processor, document_id: str, owner: str, error: str, attempts: int
    ) -> bool:
        """Records a failure; blocks the stream at max_attempts. True if blocked."""
        blocked = attempts >= proc.max_attempts
        delay = min(proc.backoff_base * 2 ** (attempts - 1), proc.backoff_max)
        async with self.db.pool.acquire() as conn:
            await conn.execute(
                "UPDATE reactor_reaction_streams SET attempts = $4, last_error = $5, blocked = $6, "
                "retry_at = now() + make_interval(secs => $7), leased_by = NULL, lease_until = NULL "
                "WHERE name = $1 AND document_id = $2 AND leased_by = $3",
                proc.name,
                document_id,
                owner,
                attempts,
                error[:2000],
                blocked,
                delay,
            )
        return blocked

    async def release(self, name: str, document_id: str, owner: str) -> None:
        async with self.db.pool.acquire() as conn:
            await conn.execute(
                "UPDATE reactor_reaction_streams SET leased_by = NULL, lease_until = NULL "
                "WHERE name = $1 AND document_id = $2 AND leased_by = $3",
                name,
                document_id,
                owner,
            )

    async def streams(
        self, name: str | None = None, *, blocked_only: bool = False
    ) -> list[StreamState]:
        async with self.db.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT name, document_id, (head_tx, head_ordinal) > (done_tx, done_ordinal) AS pending, "
                "attempts, blocked, last_error, leased_by, lease_until, retry_at "
                "FROM reactor_reaction_streams WHERE ($1::text IS NULL OR name = $1) "
                "AND (NOT $2 OR blocked) ORDER BY name, document_id",
                name,
                blocked_only,
            )
        return [StreamState(**dict(r)) for r in rows]

    async def unblock(self, name: str, document_id: str) -> bool:
        async with self.db.pool.acquire() as conn:
            return bool(
                await conn.fetchval(
                    "UPDATE reactor_reaction_streams SET blocked = false, attempts = 0, "
                    "retry_at = NULL WHERE name = $1 AND document_id = $2 AND blocked "
                    "RETURNING true",
                    name,
                    document_id,
                )
            )

    @staticmethod
    async def _feed(conn: asyncpg.Connection, name: str) -> Position:
        row = await conn.fetchrow(
            "SELECT feed_tx::text::bigint AS tx, feed_ordinal FROM reactor_reactions WHERE name = $1",
            name,
        )
        return Position() if row is None else Position(row["tx"], row["feed_ordinal"])


async def _types(conn: asyncpg.Connection, ids: set[str]) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT id, document_type FROM reactor_documents WHERE id = ANY($1)", list(ids)
    )
    return {r["id"]: r["document_type"] for r in rows}
