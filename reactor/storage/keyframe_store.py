"""State snapshots every N operations, so rebuilding a document replays at
most N-1 operations whatever its length."""

from __future__ import annotations

from typing import Any

import asyncpg

from reactor.storage.database import Database


class KeyframeStore:
    def __init__(self, db: Database):
        self.db = db

    @staticmethod
    async def put(
        conn: asyncpg.Connection,
        document_id: str,
        scope: str,
        branch: str,
        index: int,
        hash_: str,
        state: dict[str, Any],
    ) -> None:
        await conn.execute(
            "INSERT INTO reactor_keyframes (document_id, scope, branch, idx, hash, state) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            document_id,
            scope,
            branch,
            index,
            hash_,
            state,
        )

    @staticmethod
    async def nearest(
        conn: asyncpg.Connection, document_id: str, scope: str, branch: str, at_most: int
    ) -> tuple[int, str, dict[str, Any]] | None:
        """The latest keyframe at or before operation index `at_most`."""
        row = await conn.fetchrow(
            "SELECT idx, hash, state FROM reactor_keyframes WHERE document_id = $1 AND scope = $2 "
            "AND branch = $3 AND idx <= $4 ORDER BY idx DESC LIMIT 1",
            document_id,
            scope,
            branch,
            at_most,
        )
        if row is None:
            return None
        return row["idx"], row["hash"], row["state"]
