"""This database's reactor id: what peers call it, and how they recognize
operations that came from it (reactor/domain/sync.py)."""

from __future__ import annotations

import weakref

from reactor.storage.database import Database

READ_IDENTITY = "SELECT reactor_id FROM reactor_identity"

# The id never changes once the migration wrote it: one read per Database.
_KNOWN: weakref.WeakKeyDictionary[Database, str] = weakref.WeakKeyDictionary()


async def reactor_id(db: Database) -> str:
    known = _KNOWN.get(db)
    if known is None:
        async with db.pool.acquire() as conn:
            value = await conn.fetchval(READ_IDENTITY)
        if not isinstance(value, str):
            raise RuntimeError("reactor_identity has no row: run the migrations")
        known = _KNOWN[db] = value
    return known
