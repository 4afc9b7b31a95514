"""A page of this reactor's log as a peer loads it: the operations after a
position, grouped into runs per lane (`LoadRequest`s of reactor/domain/sync.py).

Positions are those of the change feed (`OperationStore.read_visible`): a
page never holds an operation that a still-open transaction could precede,
so a peer that resumes after `next` misses nothing.

What a peer is not sent: operations it sent itself (their job id names it as
the origin, reactor/domain/sync.py), unless this reactor re-appended them as
merged copies, whose order the peer needs to converge on the same log. The
cursor still moves past what is left out, so a page may carry no loads.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import asyncpg

from reactor.domain.actions import SCOPES
from reactor.domain.document import Operation
from reactor.domain.merge import dead_actions, dead_covered
from reactor.domain.sync import (
    LoadRequest,
    OperationRef,
    SyncOperation,
    is_merged_copy,
    origin_of_job,
)
from reactor.storage.database import Database
from reactor.storage.operation_store import OperationStore, Position, row_to_operation

MAX_PAGE = 1000

# The visibility rule of `OperationStore.read_visible`, with each
# operation's document type and the page's filters. One document's page
# reads through that document's rows, not the whole log's.
_PAGE = """
SELECT o.tx_id::text::bigint AS tx, o.ordinal, o.id, o.document_id, o.scope, o.branch,
       o.idx, o.skip, o.ts, o.hash, o.action, o.job_id, d.document_type
FROM reactor_operations o
LEFT JOIN reactor_documents d ON d.id = o.document_id
WHERE (o.tx_id, o.ordinal) > ($1::text::xid8, $2)
  AND o.tx_id < pg_snapshot_xmin(pg_current_snapshot())
  AND ($4::text IS NULL OR d.document_type = $4)
  AND ($5::text[] IS NULL OR d.document_type = ANY($5))
  {document}
ORDER BY o.tx_id, o.ordinal
LIMIT $3
"""
READ_PAGE = _PAGE.format(document="")
READ_DOCUMENT_PAGE = _PAGE.format(document="AND o.document_id = $6")

# The last visible operation: a page that read everything up to it, its
# filters leaving the rest out, ends there (same snapshot as the page).
READ_HEAD = """
SELECT tx_id::text::bigint AS tx, ordinal FROM reactor_operations
WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY tx_id DESC, ordinal DESC LIMIT 1
"""

# The operation before each run, in its lane: the peer must hold it.
READ_PREDECESSORS = """
SELECT o.document_id, o.scope, o.branch, o.idx, o.id, o.hash, o.action->>'id' AS action_id
FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[]) AS p(document_id, scope, branch, idx)
JOIN reactor_operations o
  ON o.document_id = p.document_id AND o.scope = p.scope
 AND o.branch = p.branch AND o.idx = p.idx
"""

# A lane's whole log, for what its skips leave out for good.
LANE_END = 2**31 - 1

Lane = tuple[str, str, str]  # (document_id, scope, branch)
DOCUMENT = "document"


@dataclass
class SyncPage:
    """`next`: where the next page starts. A page cut at its limit (`more`)
    ends at the last operation it read, served or not; any other page read
    everything visible, so it ends at the log's visible head even when its
    filters left the last operations out."""

    loads: list[LoadRequest]
    next: Position
    more: bool
    read: int = 0  # operations read, served or not
    served: int = field(init=False)

    def __post_init__(self) -> None:
        self.served = sum(len(load.operations) for load in self.loads)


def echoed(op: Operation, peer: str | None) -> bool:
    """Whether `peer` sent `op` itself (and so must not get it back)."""
    if peer is None:
        return False
    return origin_of_job(op.job_id) == peer and not is_merged_copy(op.action)


class SyncSource:
    def __init__(self, db: Database):
        self.db = db

    async def read_page(
        self,
        after: Position,
        limit: int,
        peer: str | None = None,
        document_type: str | None = None,
        document_id: str | None = None,
        *,
        allowed_types: Collection[str] | None = None,
    ) -> SyncPage:
        """`allowed_types`: the document types the reader may see (None: all)."""
        limit = max(1, min(limit, MAX_PAGE))
        types = None if allowed_types is None else sorted(allowed_types)
        params: list[object] = [str(after.tx_id), after.ordinal, limit, document_type, types]
        if document_id is not None:
            params.append(document_id)
        async with self.db.pool.acquire() as conn:
            # Read only, so it takes no xid of its own (see `read_visible`);
            # repeatable read, so every statement sees the page's snapshot.
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                rows = await conn.fetch(
                    READ_PAGE if document_id is None else READ_DOCUMENT_PAGE, *params
                )
                more = len(rows) == limit
                kept = [
                    (op, r["document_type"])
                    for r in rows
                    if not echoed(op := row_to_operation(r), peer)
                ]
                loads = _runs(kept)
                await _link(conn, loads)
                await _annotate_dead(conn, loads)
                if more:
                    last = rows[-1]
                    end = Position(last["tx"], last["ordinal"])
                else:
                    head = await conn.fetchrow(READ_HEAD)
                    end = (
                        after if head is None else max(after, Position(head["tx"], head["ordinal"]))
                    )
        return SyncPage(loads=loads, next=end, more=more, read=len(rows))


def _runs(ops: Sequence[tuple[Operation, str | None]]) -> list[LoadRequest]:
    """Consecutive indexes of a lane make one run, in the order each run's
    first operation was read. A document's runs also keep the log's order
    across its document scope and its other scopes (a run ends where the
    other side wrote): the receiver loads them in that order, so a write
    lands before the DELETE_DOCUMENT that followed it, not after."""
    loads: list[LoadRequest] = []
    open_runs: dict[Lane, LoadRequest] = {}
    last_scope: dict[tuple[str, str], str] = {}
    for op, document_type in ops:
        lane = (op.document_id, op.scope, op.branch)
        document = (op.document_id, op.branch)
        previous = last_scope.get(document)
        last_scope[document] = op.scope
        if previous is not None and previous != op.scope and DOCUMENT in (previous, op.scope):
            for scope in SCOPES:
                open_runs.pop((op.document_id, scope, op.branch), None)
        run = open_runs.get(lane)
        wire = SyncOperation.of(op)
        if run is not None and run.operations[-1].index + 1 == op.index:
            run.operations.append(wire)
            continue
        run = LoadRequest(
            document_id=op.document_id,
            scope=op.scope,
            branch=op.branch,
            document_type=document_type,
            operations=[wire],
        )
        open_runs[lane] = run
        loads.append(run)
    return loads


async def _link(conn: asyncpg.Connection, loads: Sequence[LoadRequest]) -> None:
    """Sets each run's `after`: its lane's operation before the first."""
    wanted = [load for load in loads if load.operations[0].index > 0]
    if not wanted:
        return
    rows = await conn.fetch(
        READ_PREDECESSORS,
        [load.document_id for load in wanted],
        [load.scope for load in wanted],
        [load.branch for load in wanted],
        [load.operations[0].index - 1 for load in wanted],
    )
    found = {(r["document_id"], r["scope"], r["branch"], r["idx"]): r for r in rows}
    for load in wanted:
        row = found.get((load.document_id, load.scope, load.branch, load.operations[0].index - 1))
        if row is not None:
            load.after = OperationRef(
                id=row["id"], action_id=row["action_id"], index=row["idx"], hash=row["hash"]
            )


async def _annotate_dead(conn: asyncpg.Connection, loads: Sequence[LoadRequest]) -> None:
    """Fills `dead` on operations whose skip leaves others out, from their
    lane's whole log (read once per lane)."""
    logs: dict[Lane, tuple[list[Operation], set[str]]] = {}
    for load in loads:
        lane = (load.document_id, load.scope, load.branch)
        for op in load.operations:
            if op.skip == 0:
                continue
            if lane not in logs:
                lane_log = await OperationStore.load_range(conn, *lane, 0, LANE_END)
                logs[lane] = lane_log, dead_actions(lane_log)
            log, dead = logs[lane]
            # A skip reaching before index 0 covers nothing that a peer
            # could hold (and would index the log from its end).
            if op.index < len(log) and log[op.index].id == op.id and op.skip <= op.index:
                op.dead = dead_covered(log, op.index, dead)
