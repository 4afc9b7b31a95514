"""The append-only operation log.

Global order and the commit-visibility gap: ordinals come from an identity
column, so a transaction can draw ordinal 5, stay open, while another draws 6
and commits. A reader that trusted "max ordinal seen" would skip 5 forever.
Every writer therefore forces its transaction id (xid8) *before* drawing an
ordinal and stores it on the row. Readers only take rows whose tx_id is below
the snapshot's xmin (every transaction that could still add such rows has
ended) and track their position as (tx_id, ordinal). See `read_visible`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from reactor.domain.actions import Action
from reactor.domain.document import Operation, PagedResults
from reactor.storage.database import Database
from reactor.storage.notify import NotifyListener, channel_name

# One operation written outside the job's own statement (an upgrade's, in a
# scope other than the job's), in the job's transaction: its xid is forced.
APPEND_ONE = """
INSERT INTO reactor_operations (tx_id, id, document_id, scope, branch, idx, skip, ts, hash, action, job_id)
VALUES (pg_current_xact_id(), $1, $2, $3, $4, $5, 0, $6, $7, $8, $9)
"""

_COLUMNS = "ordinal, id, document_id, scope, branch, idx, skip, ts, hash, action, job_id"


@dataclass(frozen=True, order=True)
class Position:
    """A reader's place in the global log: (transaction id, ordinal)."""

    tx_id: int = 0
    ordinal: int = 0


def row_to_operation(row: asyncpg.Record) -> Operation:
    return Operation(
        id=row["id"],
        index=row["idx"],
        skip=row["skip"],
        timestamp=row["ts"],
        hash=row["hash"],
        action=Action.model_validate(row["action"]),
        document_id=row["document_id"],
        scope=row["scope"],
        branch=row["branch"],
        ordinal=row["ordinal"],
        job_id=row["job_id"],
    )


class OperationStore:
    """`notify=True` opts in to the `notify(handler)` hook: one payload per
    committed job (announced by appliers that share `instance_id`) on a
    channel per (schema, table), delivered to handlers of *other* store
    instances only."""

    def __init__(
        self, db: Database, *, notify: bool = False, listener: NotifyListener | None = None
    ):
        self.db = db
        self.notify_enabled = notify
        self._listener = listener
        self.instance_id = listener.instance_id if listener else uuid.uuid4().hex

    @property
    def channel(self) -> str:
        return channel_name()

    async def notify(self, handler: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Calls `handler(payload)` for each commit made by another process
        (payload: {by, document_id, document_type, job_id, key, branch,
        events:[{ordinal, type, scope, index}]}; a job too big to list its
        events in one NOTIFY, over about a hundred operations, comes as
        {..., scope, index, count, types} instead: read the range from the
        log). Returns the disposer. A hint only: it may miss commits
        (reconnects, a shortened payload still too big); poll for
        correctness."""
        if not self.notify_enabled:
            raise RuntimeError("this operation store was built with notify=False")
        if self._listener is None:
            if self.db.url is None:
                raise RuntimeError("notify needs a database URL for its LISTEN connection")
            self._listener = NotifyListener(self.db.url, [self.channel], self.instance_id)
        await self._listener.start()
        me, channel = self.instance_id, self.channel

        def filtered(ch: str, payload: dict[str, Any]) -> None:
            if ch == channel and payload.get("by") != me:
                handler(payload)

        return self._listener.add_handler(filtered)

    @staticmethod
    async def force_xid(conn: asyncpg.Connection) -> None:
        """Assigns the transaction its xid before any ordinal is drawn."""
        await conn.execute("SELECT pg_current_xact_id()")

    @staticmethod
    async def append_one(
        conn: asyncpg.Connection,
        document_id: str,
        scope: str,
        branch: str,
        index: int,
        digest: str,
        action: Action,
        operation_id: str,
        job_id: str,
    ) -> None:
        await conn.execute(
            APPEND_ONE,
            operation_id,
            document_id,
            scope,
            branch,
            index,
            action.timestamp,
            digest,
            action.model_dump(mode="json"),
            job_id,
        )

    @staticmethod
    async def load_range(
        conn: asyncpg.Connection, document_id: str, scope: str, branch: str, start: int, end: int
    ) -> list[Operation]:
        """Operations with start <= index < end, in index order."""
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM reactor_operations WHERE document_id = $1 AND scope = $2 "
            "AND branch = $3 AND idx >= $4 AND idx < $5 ORDER BY idx",
            document_id,
            scope,
            branch,
            start,
            end,
        )
        return [row_to_operation(r) for r in rows]

    async def get_since(
        self, document_id: str, scope: str, branch: str, revision: int, limit: int | None = None
    ) -> PagedResults:
        """Operations with index >= revision."""
        async with self.db.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM reactor_operations WHERE document_id = $1 AND scope = $2 "
                "AND branch = $3 AND idx >= $4 ORDER BY idx LIMIT $5",
                document_id,
                scope,
                branch,
                revision,
                limit,
            )
        ops = [row_to_operation(r) for r in rows]
        nxt = ops[-1].index + 1 if limit is not None and len(ops) == limit else None
        return PagedResults(results=ops, next_cursor=nxt)

    async def get_revisions(self, document_id: str, branch: str = "main") -> dict[str, int]:
        """Number of operations per scope (scopes with none are left out).
        Read from the document view, written in the same transaction as the
        operations: no aggregate over the document's whole log."""
        async with self.db.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT scope, revision FROM reactor_document_states "
                "WHERE document_id = $1 AND branch = $2 AND revision > 0",
                document_id,
                branch,
            )
        return {r["scope"]: r["revision"] for r in rows}

    async def get_operations(
        self,
        document_id: str,
        *,
        scope: str | None = None,
        branch: str = "main",
        cursor: int = 0,
        limit: int = 100,
        newest_first: bool = False,
    ) -> PagedResults:
        """A page of a document's operations, ordered by global ordinal;
        `cursor` is the ordinal to continue after (before, newest first;
        0 starts at the newest)."""
        order = (
            "AND ($4 = 0 OR ordinal < $4) ORDER BY ordinal DESC"
            if newest_first
            else "AND ordinal > $4 ORDER BY ordinal"
        )
        async with self.db.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM reactor_operations WHERE document_id = $1 "
                f"AND branch = $2 AND ($3::text IS NULL OR scope = $3) {order} LIMIT $5",
                document_id,
                branch,
                scope,
                cursor,
                limit,
            )
        ops = [row_to_operation(r) for r in rows]
        nxt = ops[-1].ordinal if len(ops) == limit and ops else None
        return PagedResults(results=ops, next_cursor=nxt)

    @staticmethod
    async def position_of(
        conn: asyncpg.Connection, document_id: str, scope: str, branch: str, index: int
    ) -> Position | None:
        row = await conn.fetchrow(
            "SELECT tx_id::text::bigint AS tx, ordinal FROM reactor_operations "
            "WHERE document_id = $1 AND scope = $2 AND branch = $3 AND idx = $4",
            document_id,
            scope,
            branch,
            index,
        )
        return None if row is None else Position(row["tx"], row["ordinal"])

    async def get_by_job(self, job_id: str) -> list[Operation]:
        async with self.db.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM reactor_operations WHERE job_id = $1 ORDER BY ordinal",
                job_id,
            )
        return [row_to_operation(r) for r in rows]

    @staticmethod
    async def read_visible(
        conn: asyncpg.Connection, after: Position, limit: int
    ) -> list[tuple[Position, Operation]]:
        """Operations after `after` that no open transaction can precede.

        Must run before the caller's transaction takes an xid of its own,
        otherwise its own xid holds the horizon back."""
        rows = await conn.fetch(
            f"SELECT tx_id::text::bigint AS tx, {_COLUMNS} FROM reactor_operations "
            "WHERE (tx_id, ordinal) > ($1::text::xid8, $2) "
            "AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) "
            "ORDER BY tx_id, ordinal LIMIT $3",
            str(after.tx_id),
            after.ordinal,
            limit,
        )
        return [(Position(r["tx"], r["ordinal"]), row_to_operation(r)) for r in rows]
