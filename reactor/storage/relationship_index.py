"""Parent/child edges between documents (drives and their files, and
explicit ADD_RELATIONSHIP edges)."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from reactor.storage.database import Database

# The children a delete would leave under a document, counted under its lane
# lock: edges its other scopes' models hold (a drive's file nodes, source
# 'model'), plus its explicit edges as the deleting job's own state has them
# ($2). The explicit rows are not read: they are rewritten only after the
# job's last action, so a job that removes its children and then deletes the
# document would still see them.
COUNT_CHILDREN_AT_DELETE = """
SELECT count(DISTINCT child_id) FROM (
    SELECT child_id FROM reactor_relationships WHERE parent_id = $1 AND source <> 'document'
    UNION ALL
    SELECT unnest($2::text[])
) c
"""


class RelationshipIndex:
    def __init__(self, db: Database):
        self.db = db

    @staticmethod
    async def replace_source(
        conn: asyncpg.Connection, parent_id: str, source: str, children: Iterable[str]
    ) -> None:
        """Makes `children` the exact set of child edges owned by `source`."""
        wanted = sorted(set(children))
        await conn.execute(
            "DELETE FROM reactor_relationships WHERE parent_id = $1 AND source = $2 "
            "AND NOT (child_id = ANY($3::text[]))",
            parent_id,
            source,
            wanted,
        )
        if wanted:
            await conn.execute(
                "INSERT INTO reactor_relationships (parent_id, child_id, source) "
                "SELECT $1, c, $2 FROM unnest($3::text[]) AS c ON CONFLICT DO NOTHING",
                parent_id,
                source,
                wanted,
            )

    @staticmethod
    async def count_at_delete(
        conn: asyncpg.Connection, parent_id: str, explicit: Iterable[str]
    ) -> int:
        count = await conn.fetchval(COUNT_CHILDREN_AT_DELETE, parent_id, sorted(set(explicit)))
        return int(count or 0)

    async def children(self, parent_id: str, *, include_deleted: bool = False) -> list[str]:
        async with self.db.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT DISTINCT r.child_id FROM reactor_relationships r "
                "LEFT JOIN reactor_documents d ON d.id = r.child_id "
                "WHERE r.parent_id = $1 AND ($2 OR d.deleted IS NOT TRUE) ORDER BY r.child_id",
                parent_id,
                include_deleted,
            )
        return [r["child_id"] for r in rows]

    async def parents(self, child_id: str, *, include_deleted: bool = False) -> list[str]:
        async with self.db.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT DISTINCT r.parent_id FROM reactor_relationships r "
                "LEFT JOIN reactor_documents d ON d.id = r.parent_id "
                "WHERE r.child_id = $1 AND ($2 OR d.deleted IS NOT TRUE) ORDER BY r.parent_id",
                child_id,
                include_deleted,
            )
        return [r["parent_id"] for r in rows]
