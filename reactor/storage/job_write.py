"""The statements that apply a job: the lane lock, the read under it, and the
one statement that writes everything a job writes.

The write is assembled from parts (reactor/storage/sql_parts.py) that name
their parameters: most jobs write no keyframe and no child edges, and a
statement without those CTEs is cheaper for PostgreSQL to set up on every
execution. Each variant is its own prepared statement in asyncpg's cache.
(The commit's NOTIFY is sent after the commit, see reactor/storage/notify.py.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

import asyncpg

from reactor.storage.operation_store import Position
from reactor.storage.sql_parts import Part, Statement, assemble

# The lane lock, then the xid: taken before any ordinal is drawn (see
# reactor/storage/operation_store.py on the visibility gap).
LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0)), pg_current_xact_id()"

# Under the lock (a new statement, so a new snapshot): the ledger, the
# header and the head revision in one row.
READ = """
SELECT l.status, l.coordinates, l.error, d.document_type, d.deleted, d.model_version,
       s.revision, s.hash
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
    op_skips: list[int]  # reactor/domain/history.py
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

    @property
    def keyframe_indices(self) -> list[int]:
        return [k[0] for k in self.keyframes]

    @property
    def keyframe_hashes(self) -> list[str]:
        return [k[1] for k in self.keyframes]

    @property
    def keyframe_states(self) -> list[str]:
        return [k[2] for k in self.keyframes]


# `gate` takes the lane lock and forces the xid before anything else runs
# (the locked path already holds both; advisory locks are re-entrant). On the
# fast path this statement is the whole transaction, so it guards itself:
# - the header UPDATE re-checks `NOT deleted` on the newest row version
#   (READ COMMITTED re-evaluates an UPDATE's condition after waiting), and
#   everything else is written only if it matched (`go`);
# - `reactor_operations_position` (document, scope, branch, idx) makes a
#   stale head a unique violation, and the ledger's primary key a retry one.
# Every part's parameters are JobWrite's attributes of the same names.
_JOB = Part(
    params=(
        "document_id",
        "scope",
        "branch",
        "job_id",
        "op_ids",
        "op_indices",
        "op_timestamps",
        "op_hashes",
        "op_actions",
        "op_skips",
        "revision",
        "hash",
        "state",
        "modified_at",
        "rename",
        "header",
        "coordinates",
        "applied_by",
        "lock_key",
    ),
    sql="""
WITH gate AS MATERIALIZED (
    SELECT pg_advisory_xact_lock(hashtextextended({lock_key}, 0)) AS locked, pg_current_xact_id() AS xid
), hdr AS (
    UPDATE reactor_documents SET modified_at = greatest(modified_at, {modified_at}), name = coalesce({rename}, name)
    WHERE id = {document_id} AND {header} AND NOT deleted AND EXISTS (SELECT 1 FROM gate)
    RETURNING 1
), go AS MATERIALIZED (
    SELECT EXISTS (SELECT 1 FROM gate) AND (NOT {header} OR EXISTS (SELECT 1 FROM hdr)) AS ok
), ins AS (
    INSERT INTO reactor_operations
        (tx_id, id, document_id, scope, branch, idx, skip, ts, hash, action, job_id)
    SELECT (SELECT xid FROM gate), o.id, {document_id}, {scope}, {branch}, o.idx, o.skip, o.ts, o.hash, o.action::jsonb, {job_id}
    FROM unnest({op_ids}::text[], {op_indices}::int[], {op_timestamps}::timestamptz[], {op_hashes}::text[], {op_actions}::text[], {op_skips}::int[])
         AS o(id, idx, ts, hash, action, skip)
    WHERE (SELECT ok FROM go)
    ORDER BY o.idx
    RETURNING tx_id::text::bigint AS tx, ordinal
), st AS (
    INSERT INTO reactor_document_states (document_id, scope, branch, revision, hash, state)
    SELECT {document_id}, {scope}, {branch}, {revision}, {hash}, {state}::text::json WHERE (SELECT ok FROM go)
    ON CONFLICT (document_id, scope, branch)
    DO UPDATE SET revision = EXCLUDED.revision, hash = EXCLUDED.hash, state = EXCLUDED.state
), led AS (
    INSERT INTO reactor_applied_jobs (job_id, status, coordinates, error, applied_by)
    SELECT {job_id}, 'applied', {coordinates}::text::jsonb, NULL, {applied_by} WHERE (SELECT ok FROM go)
)""",
)

_KEYFRAMES = Part(
    params=("keyframe_indices", "keyframe_hashes", "keyframe_states"),
    sql="""
, kf AS (
    INSERT INTO reactor_keyframes (document_id, scope, branch, idx, hash, state)
    SELECT {document_id}, {scope}, {branch}, k.idx, k.hash, k.state::json
    FROM unnest({keyframe_indices}::int[], {keyframe_hashes}::text[], {keyframe_states}::text[]) AS k(idx, hash, state)
    WHERE (SELECT ok FROM go)
    ON CONFLICT DO NOTHING
)""",
)

# The model's child edges: those it no longer declares go, new ones come.
_CHILDREN = Part(
    params=("children",),
    sql="""
, rel_gone AS (
    DELETE FROM reactor_relationships
    WHERE (SELECT ok FROM go) AND parent_id = {document_id} AND source = 'model'
      AND NOT (child_id = ANY({children}::text[]))
), rel_new AS (
    INSERT INTO reactor_relationships (parent_id, child_id, source)
    SELECT {document_id}, c, 'model' FROM unnest({children}::text[]) AS c WHERE (SELECT ok FROM go)
    ON CONFLICT DO NOTHING
)""",
)

# The positions (tx_id, ordinal) of the job's operations.
_POSITIONS = Part(
    sql="""
SELECT array_agg(tx ORDER BY ordinal) AS txs, array_agg(ordinal ORDER BY ordinal) AS ordinals
FROM ins
"""
)


@lru_cache(maxsize=4)
def job_statement(keyframes: bool, children: bool) -> Statement:
    """Operations, document view, header, ledger, and as needed keyframes and
    the model's child edges, in one statement."""
    parts = [_JOB]
    if keyframes:
        parts.append(_KEYFRAMES)
    if children:
        parts.append(_CHILDREN)
    parts.append(_POSITIONS)
    return assemble(*parts)


def write_statement(keyframes: bool, children: bool) -> str:
    """The SQL text of a variant of the write."""
    return job_statement(keyframes, children).sql


def write_arguments(w: JobWrite) -> tuple[str, list[object]]:
    """The statement that writes `w`, and its arguments in its numbering."""
    statement = job_statement(bool(w.keyframes), w.children is not None)
    return statement.sql, statement.arguments(w)


async def write_job(conn: asyncpg.Connection, w: JobWrite) -> list[Position] | None:
    """The positions of the job's operations; None when the statement's guard
    stopped it (the document is missing or deleted) and nothing was written."""
    sql, args = write_arguments(w)
    row = await conn.fetchrow(sql, *args)
    assert row is not None
    if row["txs"] is None:
        return None
    return [Position(t, o) for t, o in zip(row["txs"], row["ordinals"], strict=True)]
