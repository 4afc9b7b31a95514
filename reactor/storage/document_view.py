"""The document view: one row per document (header) plus one per
(document, scope, branch) with the latest state. Serves get/find."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from reactor.domain.batch import ExistingDocument
from reactor.domain.document import Document, DocumentHeader, PagedResults
from reactor.storage.database import Database

UPSERT_STATE = """
INSERT INTO reactor_document_states (document_id, scope, branch, revision, hash, state)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (document_id, scope, branch)
DO UPDATE SET revision = EXCLUDED.revision, hash = EXCLUDED.hash, state = EXCLUDED.state
"""

# What planning a batch needs of the documents it names (reactor/domain/
# batch.py `lookup_ids`): type and deletion of each, and for those it deletes
# ($2) their children, edges of any source, counted on the parent's index.
LOOKUP_DOCUMENTS = """
SELECT d.id, d.document_type, d.deleted,
       CASE WHEN d.id = ANY($2::text[])
            THEN (SELECT count(DISTINCT r.child_id) FROM reactor_relationships r
                  WHERE r.parent_id = d.id)
            ELSE 0 END AS children
FROM reactor_documents d
WHERE d.id = ANY($1::text[])
"""

# The documents of a type still below a model version, in id order, a page
# after an id at a time (`reactor upgrade`).
BELOW_VERSION = """
SELECT id FROM reactor_documents
WHERE document_type = $1 AND model_version < $2 AND NOT deleted AND id > $3
ORDER BY id LIMIT $4
"""


class DocumentView:
    def __init__(self, db: Database):
        self.db = db

    # -- writes, inside the applying transaction ---------------------------

    @staticmethod
    async def create_header(
        conn: asyncpg.Connection,
        document_id: str,
        document_type: str,
        slug: str | None,
        name: str,
        at: datetime,
        model_version: int = 1,
    ) -> None:
        await conn.execute(
            "INSERT INTO reactor_documents "
            "(id, document_type, slug, name, created_at, modified_at, model_version) "
            "VALUES ($1, $2, $3, $4, $5, $5, $6)",
            document_id,
            document_type,
            slug,
            name,
            at,
            model_version,
        )

    @staticmethod
    async def update_header(
        conn: asyncpg.Connection,
        document_id: str,
        at: datetime,
        *,
        name: str | None = None,
        deleted: bool | None = None,
        model_version: int | None = None,
    ) -> None:
        await conn.execute(
            "UPDATE reactor_documents SET modified_at = greatest(modified_at, $2), "
            "name = coalesce($3, name), deleted = coalesce($4, deleted), "
            "model_version = coalesce($5, model_version) WHERE id = $1",
            document_id,
            at,
            name,
            deleted,
            model_version,
        )

    @staticmethod
    async def head_state(
        conn: asyncpg.Connection, document_id: str, scope: str, branch: str
    ) -> dict[str, Any] | None:
        state: dict[str, Any] | None = await conn.fetchval(
            "SELECT state FROM reactor_document_states "
            "WHERE document_id = $1 AND scope = $2 AND branch = $3",
            document_id,
            scope,
            branch,
        )
        return state

    @staticmethod
    async def head(
        conn: asyncpg.Connection, document_id: str, scope: str, branch: str
    ) -> tuple[int, dict[str, Any]] | None:
        """(revision, state) of a lane's head."""
        row = await conn.fetchrow(
            "SELECT revision, state FROM reactor_document_states "
            "WHERE document_id = $1 AND scope = $2 AND branch = $3",
            document_id,
            scope,
            branch,
        )
        return None if row is None else (row["revision"], row["state"])

    @staticmethod
    async def put_state(
        conn: asyncpg.Connection,
        document_id: str,
        scope: str,
        branch: str,
        revision: int,
        hash_: str,
        state: dict[str, Any],
    ) -> None:
        await conn.execute(UPSERT_STATE, document_id, scope, branch, revision, hash_, state)

    # -- reads --------------------------------------------------------------

    async def below_version(
        self, document_type: str, version: int, after: str = "", limit: int = 1000
    ) -> list[str]:
        async with self.db.pool.acquire() as conn:
            rows = await conn.fetch(BELOW_VERSION, document_type, version, after, limit)
        return [r["id"] for r in rows]

    async def existing(self, document_ids: list[str]) -> dict[str, tuple[str, bool]]:
        """document_id -> (document_type, deleted) for those that exist."""
        async with self.db.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT id, document_type, deleted FROM reactor_documents WHERE id = ANY($1)",
                document_ids,
            )
        return {r["id"]: (r["document_type"], r["deleted"]) for r in rows}

    async def lookup(
        self, document_ids: list[str], parents: list[str]
    ) -> dict[str, ExistingDocument]:
        """The documents among `document_ids` that exist, with the number of
        children of those among `parents`."""
        async with self.db.pool.acquire() as conn:
            rows = await conn.fetch(LOOKUP_DOCUMENTS, document_ids, parents)
        return {
            r["id"]: ExistingDocument(r["document_type"], r["deleted"], r["children"]) for r in rows
        }

    async def get(
        self, document_id: str, *, branch: str = "main", include_deleted: bool = False
    ) -> Document | None:
        return await self._get_where("d.id = $1", document_id, branch, include_deleted)

    async def get_by_slug(
        self, slug: str, *, branch: str = "main", include_deleted: bool = False
    ) -> Document | None:
        return await self._get_where("d.slug = $1", slug, branch, include_deleted)

    async def _get_where(
        self, where: str, value: str, branch: str, include_deleted: bool
    ) -> Document | None:
        async with self.db.pool.acquire() as conn:
            header = await conn.fetchrow(
                "SELECT id, document_type, slug, name, created_at, modified_at, deleted, model_version "
                f"FROM reactor_documents d WHERE {where}",
                value,
            )
            if header is None or (header["deleted"] and not include_deleted):
                return None
            states = await conn.fetch(
                "SELECT scope, revision, state FROM reactor_document_states "
                "WHERE document_id = $1 AND branch = $2",
                header["id"],
                branch,
            )
        return _document(header, states, branch)

    async def find(
        self,
        *,
        document_type: str | None = None,
        parent_id: str | None = None,
        branch: str = "main",
        cursor: str | None = None,
        limit: int = 100,
    ) -> PagedResults:
        """Documents by type and/or parent, ordered by id; `cursor` is the last
        id of the previous page."""
        async with self.db.pool.acquire() as conn:
            headers = await conn.fetch(
                "SELECT id, document_type, slug, name, created_at, modified_at, deleted, model_version "
                "FROM reactor_documents d WHERE NOT d.deleted "
                "AND ($1::text IS NULL OR d.document_type = $1) "
                "AND ($2::text IS NULL OR EXISTS (SELECT 1 FROM reactor_relationships r "
                "     WHERE r.parent_id = $2 AND r.child_id = d.id)) "
                "AND ($3::text IS NULL OR d.id > $3) ORDER BY d.id LIMIT $4",
                document_type,
                parent_id,
                cursor,
                limit,
            )
            ids = [h["id"] for h in headers]
            states = await conn.fetch(
                "SELECT document_id, scope, revision, state FROM reactor_document_states "
                "WHERE document_id = ANY($1) AND branch = $2",
                ids,
                branch,
            )
        by_doc: dict[str, list[asyncpg.Record]] = {}
        for s in states:
            by_doc.setdefault(s["document_id"], []).append(s)
        docs = [_document(h, by_doc.get(h["id"], []), branch) for h in headers]
        nxt = ids[-1] if len(ids) == limit else None
        return PagedResults(results=docs, next_cursor=nxt)


def _document(header: asyncpg.Record, states: list[asyncpg.Record], branch: str) -> Document:
    revision = {s["scope"]: s["revision"] for s in states}
    state = {s["scope"]: s["state"] for s in states if s["scope"] != "document"}
    return Document(
        header=DocumentHeader(
            id=header["id"],
            slug=header["slug"],
            name=header["name"],
            document_type=header["document_type"],
            created_at=header["created_at"],
            last_modified_at=header["modified_at"],
            revision=revision,
            branch=branch,
            deleted=header["deleted"],
            model_version=header["model_version"],
        ),
        state=state,
    )
