"""Row counts of every reactor table: what "nothing was written" is checked
against (a rejected batch that travels inline leaves reactor_batches alone,
so counting one table proves nothing)."""

from __future__ import annotations

import asyncpg

# Tables and partitioned tables of the reactor in the connection's schema.
REACTOR_TABLES = r"""
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema()
  AND c.relname LIKE 'reactor\_%'
ORDER BY c.relname
"""


async def row_counts(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        tables = [r["relname"] for r in await conn.fetch(REACTOR_TABLES)]
        counts = {t: await conn.fetchval(f'SELECT count(*) FROM "{t}"') for t in tables}
    finally:
        await conn.close()
    # Not vacuous: the operations, documents, job ledger and batches are there.
    assert {"reactor_operations", "reactor_documents", "reactor_batches"} <= set(counts), counts
    return counts
