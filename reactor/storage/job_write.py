"""The statements that apply a job: the lane lock, the read under it, and the
one statement that writes everything a job writes.

The write is built from parts: most jobs write no keyframe and no child
edges, and a statement without those CTEs is cheaper for PostgreSQL to set
up on every execution. Each variant is its own prepared statement in
asyncpg's cache. (The commit's NOTIFY is sent after the commit, see
reactor/storage/notify.py.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

import asyncpg

from reactor.storage.operation_store import Position

# The lane lock, then the xid: taken before any ordinal is drawn (see
# reactor/storage/operation_store.py on the visibility gap).
LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0)), pg_current_xact_id()"

# Under the lock (a new statement, so a new snapshot): the ledger, the
# header and the head revision in one row.
READ = """
SELECT l.status, l.coordinates, l.error, d.document_type, d.deleted, s.revision, s.hash
FROM (SELECT 1) AS one
LEFT JOIN reactor_applied_jobs l ON l.job_id = $1
LEFT JOIN reactor_documents d ON d.id = $2
LEFT JOIN reactor_document_states s ON s.document_id = $2 AND s.scope = $3 AND s.branch = $4
"""


@dataclass
class JobWrite:
    """Everything one job writes."""

    document_id: str
    scope: str
    branch: str
    job_id: str
    op_ids: list[str]
    op_indices: list[int]
    op_timestamps: list[datetime]
    op_hashes: list[str]
    op_actions: list[str]  # JSON
    revision: int
    hash: str
    state: str  # JSON
    modified_at: datetime
    rename: str | None
    header: bool  # update the header (every scope but `document`, which does it itself)
    coordinates: str  # JSON
    applied_by: str
    lock_key: str
    keyframes: list[tuple[int, str, str]] = field(default_factory=list)  # (index, hash, JSON)
    children: list[str] | None = None  # the model's child edges, when it declares them


async def write_job(conn: asyncpg.Connection, w: JobWrite) -> list[Position] | None:
    """The positions of the job's operations; None when the statement's guard
    stopped it (the document is missing or deleted) and nothing was written."""
    args: list[object] = [
        w.document_id,
        w.scope,
        w.branch,
        w.job_id,
        w.op_ids,
        w.op_indices,
        w.op_timestamps,
        w.op_hashes,
        w.op_actions,
        w.revision,
        w.hash,
        w.state,
        w.modified_at,
        w.rename,
        w.header,
        w.coordinates,
        w.applied_by,
        w.lock_key,
    ]
    if w.keyframes:
        args += [
            [k[0] for k in w.keyframes],
            [k[1] for k in w.keyframes],
            [k[2] for k in w.keyframes],
        ]
    if w.children is not None:
        args.append(w.children)
    sql = write_statement(bool(w.keyframes), w.children is not None)
    row = await conn.fetchrow(sql, *args)
    assert row is not None
    if row["txs"] is None:
        return None
    return [Position(t, o) for t, o in zip(row["txs"], row["ordinals"], strict=True)]


@lru_cache(maxsize=4)
def write_statement(keyframes: bool, children: bool) -> str:
    """Operations, document view, header, ledger, and as needed keyframes and
    the model's child edges, in one statement.

    `gate` takes the lane lock and forces the xid before anything else runs
    (the locked path already holds both; advisory locks are re-entrant). On
    the fast path this statement is the whole transaction, so it guards
    itself:
    - the header UPDATE re-checks `NOT deleted` on the newest row version
      (READ COMMITTED re-evaluates an UPDATE's condition after waiting), and
      everything else is written only if it matched (`go`);
    - `reactor_operations_position` (document, scope, branch, idx) makes a
      stale head a unique violation, and the ledger's primary key a retry one.
    It returns the positions (tx_id, ordinal) of the job's operations."""
    n = 18
    extra: list[str] = []
    if keyframes:
        k_idx, k_hash, k_state = n + 1, n + 2, n + 3
        n += 3
        extra.append(f"""
, kf AS (
    INSERT INTO reactor_keyframes (document_id, scope, branch, idx, hash, state)
    SELECT $1, $2, $3, k.idx, k.hash, k.state::json
    FROM unnest(${k_idx}::int[], ${k_hash}::text[], ${k_state}::text[]) AS k(idx, hash, state)
    WHERE (SELECT ok FROM go)
    ON CONFLICT DO NOTHING
)""")
    if children:
        c = n = n + 1
        extra.append(f"""
, rel_gone AS (
    DELETE FROM reactor_relationships
    WHERE (SELECT ok FROM go) AND parent_id = $1 AND source = 'model'
      AND NOT (child_id = ANY(${c}::text[]))
), rel_new AS (
    INSERT INTO reactor_relationships (parent_id, child_id, source)
    SELECT $1, c, 'model' FROM unnest(${c}::text[]) AS c WHERE (SELECT ok FROM go)
    ON CONFLICT DO NOTHING
)""")
    return f"""
WITH gate AS MATERIALIZED (
    SELECT pg_advisory_xact_lock(hashtextextended($18, 0)) AS locked, pg_current_xact_id() AS xid
), hdr AS (
    UPDATE reactor_documents SET modified_at = greatest(modified_at, $13), name = coalesce($14, name)
    WHERE id = $1 AND $15 AND NOT deleted AND EXISTS (SELECT 1 FROM gate)
    RETURNING 1
), go AS MATERIALIZED (
    SELECT EXISTS (SELECT 1 FROM gate) AND (NOT $15 OR EXISTS (SELECT 1 FROM hdr)) AS ok
), ins AS (
    INSERT INTO reactor_operations
        (tx_id, id, document_id, scope, branch, idx, skip, ts, hash, action, job_id)
    SELECT (SELECT xid FROM gate), o.id, $1, $2, $3, o.idx, 0, o.ts, o.hash, o.action::jsonb, $4
    FROM unnest($5::text[], $6::int[], $7::timestamptz[], $8::text[], $9::text[])
         AS o(id, idx, ts, hash, action)
    WHERE (SELECT ok FROM go)
    ORDER BY o.idx
    RETURNING tx_id::text::bigint AS tx, ordinal
), st AS (
    INSERT INTO reactor_document_states (document_id, scope, branch, revision, hash, state)
    SELECT $1, $2, $3, $10, $11, $12::text::json WHERE (SELECT ok FROM go)
    ON CONFLICT (document_id, scope, branch)
    DO UPDATE SET revision = EXCLUDED.revision, hash = EXCLUDED.hash, state = EXCLUDED.state
), led AS (
    INSERT INTO reactor_applied_jobs (job_id, status, coordinates, error, applied_by)
    SELECT $4, 'applied', $16::text::jsonb, NULL, $17 WHERE (SELECT ok FROM go)
){"".join(extra)}
SELECT array_agg(tx ORDER BY ordinal) AS txs, array_agg(ordinal ORDER BY ordinal) AS ordinals
FROM ins
"""
