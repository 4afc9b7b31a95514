"""Applies the .sql files in migrations/ in name order, once each, under an
advisory lock so that concurrent workers starting together don't race."""

from __future__ import annotations

from importlib import resources

import asyncpg

MIGRATION_LOCK = 7_412_001

_LEDGER = """
CREATE TABLE IF NOT EXISTS reactor_schema_migrations (
    name       text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def available() -> list[tuple[str, str]]:
    folder = resources.files("reactor.storage") / "migrations"
    files = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(name, (folder / name).read_text()) for name in files]


async def applied(conn: asyncpg.Connection) -> set[str]:
    exists = await conn.fetchval("SELECT to_regclass('reactor_schema_migrations') IS NOT NULL")
    if not exists:
        return set()
    return {r["name"] for r in await conn.fetch("SELECT name FROM reactor_schema_migrations")}


async def pending(conn: asyncpg.Connection) -> list[str]:
    done = await applied(conn)
    return [name for name, _ in available() if name not in done]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Returns the names of the migrations it applied."""
    ran: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(_LEDGER)
        done = await applied(conn)
        for name, sql in available():
            if name in done:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO reactor_schema_migrations (name) VALUES ($1)", name)
            ran.append(name)
    return ran
