"""State snapshots every N operations, so rebuilding a document replays at
most N-1 operations whatever its length. They are written with the job
that reaches them (reactor/storage/job_write.py)."""

from __future__ import annotations

from typing import Any

import asyncpg

from reactor.storage.database import Database


class KeyframeStore:
    def __init__(self, db: Database):
        self.db = db

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
