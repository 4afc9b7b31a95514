"""The asyncpg pool, with jsonb decoded to Python values."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from reactor.observability.outage import OUTAGE
from reactor.runtime.settings import postgres_tls_from_env


async def _init_connection(conn: asyncpg.Connection) -> None:
    since = OUTAGE.mark()
    for typ in ("jsonb", "json"):
        await conn.set_type_codec(typ, encoder=_dumps, decoder=orjson.loads, schema="pg_catalog")
    # A fresh connection answered: the pool is how a process with no
    # activity or LISTEN connection of its own learns an outage is over.
    OUTAGE.succeeded(since)


async def _reset(conn: asyncpg.Connection) -> None:
    """Replaces asyncpg's RESET ALL round trip on every release: pooled
    connections here never change session state (LISTEN uses dedicated
    connections, advisory locks are transaction-scoped), so only a connection
    returned inside a transaction needs cleaning. A connection whose protocol
    state broke (a server's FATAL read between two statements) is never
    returned: asyncpg aborts it as it raises, and the pool reconnects."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


def _dumps(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


class Database:
    """Owns (or borrows) a pool. Everything that talks SQL goes through one."""

    def __init__(self, pool: asyncpg.Pool, *, owned: bool, url: str | None = None):
        self.pool = pool
        self.url = url
        self._owned = owned

    @classmethod
    async def connect(cls, url: str, *, min_size: int = 1, max_size: int = 10) -> Database:
        pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            reset=_reset,
            **postgres_tls_from_env(),
        )
        assert pool is not None
        return cls(pool, owned=True, url=url)

    @classmethod
    def from_pool(cls, pool: asyncpg.Pool) -> Database:
        """Borrowed pools must have been created with `init=Database.init`."""
        return cls(pool, owned=False)

    init = staticmethod(_init_connection)

    async def close(self) -> None:
        if self._owned:
            await self.pool.close()
