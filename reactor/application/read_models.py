"""Custom read models, indexed exactly once.

A read model is any object with a `name` and

    async def index_operations(self, operations: list[OperationWithContext]) -> None

(and optionally `async def setup(self, conn)` to create its tables). The
coordinator feeds it the global log in visible order. Each call runs inside
one transaction (`context.tx`) that also advances the model's tracking row,
so output written through `context.tx` is exactly-once: a crash before
commit loses both, a retry redoes both. Read models run before a job is
READ_READY.

A read model whose `index_operations` keeps raising is blocked after
`max_attempts` failures in a row (with backoff between them): its error is
kept on its tracking row, catch-up skips it so the other read models go on,
and the jobs it has not indexed end WRITE_READY with a notice naming it.
A call that does not return within `index_timeout` is cancelled (its
transaction rolls back) and counts as a failure too, so a read model that
hangs is blocked like one that raises. `unblock` (`reactor read-models
unblock NAME`) clears the block; the next catch-up retries from where it
stopped. A lost connection or a restarting database is not the read model's
fault: it propagates (the activity retries) and is not counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import asyncpg

from reactor.domain.document import Operation
from reactor.domain.jobs import MAX_ERROR_MESSAGE, JobError, JobOutcome
from reactor.storage.database import Database
from reactor.storage.errors import is_transient, one_line
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


MAX_ATTEMPTS = 5
RETRY_DELAY_S = 0.1  # after the first failure; doubles per failure
RETRY_DELAY_MAX_S = 2.0
INDEX_TIMEOUT_S = 30.0  # one index_operations call; longer counts as a failure

_LOCK_TRACKING = (
    "SELECT last_tx::text::bigint AS tx, last_ordinal, blocked_error FROM "
    "reactor_read_model_tracking WHERE name = $1 FOR UPDATE"
)
_ADVANCE = (
    "UPDATE reactor_read_model_tracking SET last_tx = $2::text::xid8, "
    "last_ordinal = $3, attempts = 0, last_error = NULL, updated_at = now() WHERE name = $1"
)
# One more failure in a row; at $3 failures the read model is blocked (and
# stays blocked, with its first blocking error, until unblocked).
_RECORD_FAILURE = """
UPDATE reactor_read_model_tracking SET
    attempts = attempts + 1,
    last_error = $2,
    blocked_error = COALESCE(blocked_error, CASE WHEN attempts + 1 >= $3 THEN $2 END),
    blocked_at = COALESCE(blocked_at, CASE WHEN attempts + 1 >= $3 THEN now() END),
    updated_at = now()
WHERE name = $1
RETURNING attempts, blocked_error, last_tx::text::bigint AS tx, last_ordinal
"""
_UNBLOCK = """
UPDATE reactor_read_model_tracking
SET blocked_error = NULL, blocked_at = NULL, attempts = 0, updated_at = now()
WHERE name = $1 AND blocked_error IS NOT NULL
"""
_STATES = """
SELECT name, last_tx::text::bigint AS tx, last_ordinal, attempts, last_error,
       blocked_error, blocked_at, updated_at
FROM reactor_read_model_tracking ORDER BY name
"""


@dataclass(frozen=True)
class BlockedReadModel:
    """A read model catch-up skipped: it has indexed up to `position`."""

    name: str
    error: str
    position: Position

    def holds(self, position: Position) -> bool:
        return position > self.position

    def notice(self) -> JobError:
        return JobError(
            type="ReadModelBlocked",
            message=f"read model {self.name!r} is blocked: {self.error}; written but not "
            f"indexed by it until `reactor read-models unblock {self.name}`",
        )


class ReadModelBlockedError(Exception):
    def __init__(self, blocked: BlockedReadModel):
        super().__init__(f"read model {blocked.name!r} is blocked: {blocked.error}")
        self.blocked = blocked


class _IndexFailed(Exception):
    """The read model's own index_operations raised (the transaction rolled back)."""

    def __init__(self, cause: BaseException):
        super().__init__(_describe(cause))
        self.cause = cause


@dataclass(frozen=True)
class ReadModelState:
    name: str
    position: Position
    attempts: int  # failures in a row
    last_error: str | None
    blocked_error: str | None
    blocked_at: datetime | None
    updated_at: datetime

    @property
    def blocked(self) -> bool:
        return self.blocked_error is not None


async def read_model_states(conn: asyncpg.Connection) -> list[ReadModelState]:
    """Every tracked read model, blocked or not (no read model code needed)."""
    return [
        ReadModelState(
            name=r["name"],
            position=Position(r["tx"], r["last_ordinal"]),
            attempts=r["attempts"],
            last_error=r["last_error"],
            blocked_error=r["blocked_error"],
            blocked_at=r["blocked_at"],
            updated_at=r["updated_at"],
        )
        for r in await conn.fetch(_STATES)
    ]


async def unblock_read_model(conn: asyncpg.Connection, name: str) -> bool:
    """Clears the block; False if `name` was not blocked."""
    return bool(await conn.execute(_UNBLOCK, name) == "UPDATE 1")


def hold_back(outcomes: Iterable[JobOutcome], blocked: Sequence[BlockedReadModel]) -> None:
    """Marks the written jobs a blocked read model has not indexed."""
    for outcome in outcomes:
        if not outcome.ok or outcome.last_position is None:
            continue
        position = Position(*outcome.last_position)
        holder = next((b for b in blocked if b.holds(position)), None)
        if holder is not None:
            outcome.held = holder.notice()


class ReadModelCoordinator:
    """Dispatches the operation log to every registered read model."""

    def __init__(
        self,
        db: Database,
        read_models: Sequence[ReadModel],
        *,
        page: int = 500,
        max_attempts: int = MAX_ATTEMPTS,
        retry_delay: float = RETRY_DELAY_S,
        index_timeout: float = INDEX_TIMEOUT_S,
    ):
        names = [rm.name for rm in read_models]
        if len(set(names)) != len(names):
            raise ValueError(f"read model names must be unique: {names}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
        self.db = db
        self.read_models = list(read_models)
        self.page = page
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.index_timeout = index_timeout

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

    async def catch_up(self, target: Position, *, timeout: float = 60.0) -> list[BlockedReadModel]:
        """Returns once every read model has indexed everything up to
        `target`, or is blocked: those are returned, with how far they got."""
        if not self.read_models:
            return []
        reached = await asyncio.wait_for(
            asyncio.gather(*(self._until(rm, target) for rm in self.read_models)), timeout
        )
        return [r for r in reached if r is not None]

    async def unblock(self, name: str) -> bool:
        """Lets a blocked read model retry from where it stopped, at the next
        catch-up. False if it was not blocked."""
        async with self.db.pool.acquire() as conn:
            return await unblock_read_model(conn, name)

    async def _until(self, rm: ReadModel, target: Position) -> BlockedReadModel | None:
        delay = 0.002
        while True:
            try:
                position = await self.drain_once(rm)
            except ReadModelBlockedError as err:
                return err.blocked
            except _IndexFailed as failed:
                blocked = await self._record_failure(rm.name, failed)
                if blocked is not None:
                    return blocked
                continue
            if position >= target:
                return None
            # An older transaction is still open (visibility horizon): wait.
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def _record_failure(self, name: str, failed: _IndexFailed) -> BlockedReadModel | None:
        """Counts the failure; blocks the read model at max_attempts, else
        waits out the backoff before the caller's next attempt."""
        error = str(failed)
        async with self.db.pool.acquire() as conn:
            row = await conn.fetchrow(_RECORD_FAILURE, name, error, self.max_attempts)
        if row is None:  # the tracking row is gone: setup recreates it
            return None
        if row["blocked_error"] is not None:
            log.error(
                "read model %s blocked after %d failed attempts: %s "
                "(fix it, then `reactor read-models unblock %s`)",
                name,
                row["attempts"],
                error,
                name,
            )
            return BlockedReadModel(
                name, row["blocked_error"], Position(row["tx"], row["last_ordinal"])
            )
        attempts = int(row["attempts"])
        log.warning(
            "read model %s failed (attempt %d of %d): %s", name, attempts, self.max_attempts, error
        )
        await asyncio.sleep(min(self.retry_delay * 2 ** (attempts - 1), RETRY_DELAY_MAX_S))
        return None

    async def drain_once(self, rm: ReadModel) -> Position:
        """Indexes at most one page; returns the read model's position.
        Raises ReadModelBlockedError for a blocked read model."""
        async with self.db.pool.acquire() as conn:
            rows = await OperationStore.read_visible(
                conn, await self.position(rm.name, conn), self.page
            )
            async with conn.transaction():
                locked = await conn.fetchrow(_LOCK_TRACKING, rm.name)
                if locked is None:
                    await conn.execute(
                        "INSERT INTO reactor_read_model_tracking (name) VALUES ($1) "
                        "ON CONFLICT DO NOTHING",
                        rm.name,
                    )
                    return Position()
                current = Position(locked["tx"], locked["last_ordinal"])
                if locked["blocked_error"] is not None:
                    raise ReadModelBlockedError(
                        BlockedReadModel(rm.name, locked["blocked_error"], current)
                    )
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
                await _index(rm, batch, self.index_timeout)
                last = fresh[-1][0]
                await conn.execute(_ADVANCE, rm.name, str(last.tx_id), last.ordinal)
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


async def _index(rm: ReadModel, batch: list[OperationWithContext], timeout: float) -> None:
    """Raises _IndexFailed for what the read model is to blame for: its own
    error or a call that hangs past `timeout`; an infrastructure failure
    propagates as it is."""
    try:
        async with asyncio.timeout(timeout) as deadline:
            await rm.index_operations(batch)
    except TimeoutError as exc:
        if deadline.expired():
            raise _IndexFailed(
                TimeoutError(f"index_operations did not return within {timeout:g} s")
            ) from exc
        raise
    except Exception as exc:
        if is_transient(exc):
            raise
        raise _IndexFailed(exc) from exc


def _describe(exc: BaseException) -> str:
    return one_line(exc)[:MAX_ERROR_MESSAGE]
