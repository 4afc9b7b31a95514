"""Todo statistics per drive: how many items, and how many checked, across
the todo lists filed in each drive.

It keeps one row per todo list (written through `context.tx`, so it is
exactly-once with the tracking row) and aggregates per drive through the
relationship index at query time, so moving a list between drives needs no
re-indexing."""

from __future__ import annotations

from typing import Any

import asyncpg

from reactor.application.read_models import OperationWithContext
from reactor.storage.database import Database

TODO_LIST = "powerhouse/todo-list"

SETUP = """
CREATE TABLE IF NOT EXISTS example_todo_list_stats (
    list_id    text PRIMARY KEY,
    total      integer NOT NULL,
    checked    integer NOT NULL,
    operations bigint  NOT NULL
)
"""

UPSERT = """
INSERT INTO example_todo_list_stats AS s (list_id, total, checked, operations)
SELECT $1, (st.state->'stats'->>'total')::int, (st.state->'stats'->>'checked')::int, $2
FROM reactor_document_states st
WHERE st.document_id = $1 AND st.scope = 'global' AND st.branch = 'main'
ON CONFLICT (list_id) DO UPDATE SET total = EXCLUDED.total, checked = EXCLUDED.checked,
    operations = s.operations + EXCLUDED.operations
"""


class TodoStatsPerDrive:
    name = "todo-stats-per-drive"

    async def setup(self, conn: asyncpg.Connection) -> None:
        await conn.execute(SETUP)

    async def index_operations(self, operations: list[OperationWithContext]) -> None:
        per_list: dict[str, int] = {}
        tx = None
        for item in operations:
            tx = item.context.tx
            op = item.operation
            if item.context.document_type == TODO_LIST and op.scope == "global":
                per_list[op.document_id] = per_list.get(op.document_id, 0) + 1
        for list_id, count in per_list.items():
            assert tx is not None
            # The view holds the newest state; re-deriving from it is idempotent.
            await tx.execute(UPSERT, list_id, count)

    @staticmethod
    async def for_drive(db: Database, drive_id: str) -> dict[str, Any]:
        async with db.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT count(*) AS lists, coalesce(sum(s.total), 0) AS total, "
                "coalesce(sum(s.checked), 0) AS checked, coalesce(sum(s.operations), 0) AS ops "
                "FROM example_todo_list_stats s JOIN (SELECT DISTINCT child_id FROM "
                "reactor_relationships WHERE parent_id = $1) r ON r.child_id = s.list_id",
                drive_id,
            )
        assert row is not None
        return {
            "lists": row["lists"],
            "total": row["total"],
            "checked": row["checked"],
            "unchecked": row["total"] - row["checked"],
            "operations": row["ops"],
        }
