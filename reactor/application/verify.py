"""Checking a document against its log: every lane (scope and branch) is
replayed from its first operation, ignoring keyframes, and every stored
hash, every keyframe and the document view's head are compared with what
the replay produces. The first difference is reported, as the operation
after which stored and replayed states part: everything after it differs
too, so later differences say nothing new."""

from __future__ import annotations

from typing import Any, Literal

import asyncpg
from pydantic import BaseModel

from reactor.application.replay import DOCUMENT_TYPE
from reactor.domain.errors import DocumentNotFoundError
from reactor.domain.hashing import state_hash
from reactor.domain.history import Replayer
from reactor.domain.lane_reducer import LaneReducer
from reactor.domain.model import DocumentModel, ModelRegistry
from reactor.storage.database import Database
from reactor.storage.operation_store import OperationStore

# The lanes a document has: the view holds a row for each scope it set up
# (a model's scopes start at revision 0, with no operation), the log for
# each scope written.
LANES = (
    "SELECT scope, branch FROM reactor_document_states WHERE document_id = $1 "
    "UNION SELECT DISTINCT scope, branch FROM reactor_operations WHERE document_id = $1"
)
VIEW_HEAD = (
    "SELECT revision, hash, state FROM reactor_document_states "
    "WHERE document_id = $1 AND scope = $2 AND branch = $3"
)
KEYFRAMES = (
    "SELECT idx, hash, state FROM reactor_keyframes "
    "WHERE document_id = $1 AND scope = $2 AND branch = $3 ORDER BY idx"
)
# Whether a lane has an operation with a skip: only then does its replay
# hold the operations it replayed (reactor/domain/history.py).
HAS_SKIPS = (
    "SELECT EXISTS (SELECT 1 FROM reactor_operations WHERE document_id = $1 "
    "AND scope = $2 AND branch = $3 AND skip > 0)"
)
# Operations read per query: bounds memory on a long log.
PAGE = 1000

Kind = Literal["operation", "keyframe", "view"]


class Difference(BaseModel):
    """Where the stored log first disagrees with its replay. `index` is the
    operation after which the states part (for the view, its revision - 1;
    -1 for a state no operation produced)."""

    scope: str
    branch: str
    index: int
    kind: Kind
    stored_hash: str | None
    replayed_hash: str | None
    detail: str

    def describe(self) -> str:
        return (
            f"{self.kind} {self.scope}/{self.branch} index {self.index}: {self.detail} "
            f"(stored {self.stored_hash}, replayed {self.replayed_hash})"
        )


class Verification(BaseModel):
    document_id: str
    ok: bool
    operations: int  # replayed before the first difference, or all of them
    difference: Difference | None = None


async def verify_document(db: Database, registry: ModelRegistry, document_id: str) -> Verification:
    # One snapshot: a writer committing meanwhile must not show as a view
    # ahead of the log it read.
    async with (
        db.pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        doc_type = await conn.fetchval(DOCUMENT_TYPE, document_id)
        if doc_type is None:
            raise DocumentNotFoundError(f"document {document_id!r} not found")
        model = registry.get(doc_type)
        lanes = sorted(
            ((r["scope"], r["branch"]) for r in await conn.fetch(LANES, document_id)),
            key=lambda lane: (lane[0] != "document", lane[1], lane[0]),
        )
        replayed = 0
        for scope, branch in lanes:
            count, difference = await _verify_lane(conn, model, document_id, scope, branch)
            replayed += count
            if difference is not None:
                return Verification(
                    document_id=document_id, ok=False, operations=replayed, difference=difference
                )
    return Verification(document_id=document_id, ok=True, operations=replayed)


async def _verify_lane(
    conn: asyncpg.Connection, model: DocumentModel, document_id: str, scope: str, branch: str
) -> tuple[int, Difference | None]:
    """(operations replayed, first difference)."""

    def differs(
        index: int, kind: Kind, stored: str | None, replayed: str | None, detail: str
    ) -> Difference:
        return Difference(
            scope=scope,
            branch=branch,
            index=index,
            kind=kind,
            stored_hash=stored,
            replayed_hash=replayed,
            detail=detail,
        )

    lane = LaneReducer.initial(model, scope)
    digest = lane.digest()
    # Skips honoured (reactor/domain/history.py); the document scope has none.
    skips = bool(await conn.fetchval(HAS_SKIPS, document_id, scope, branch))
    replayer = Replayer(model if scope != "document" else None, scope, lane, keep_log=skips)
    rows = await conn.fetch(KEYFRAMES, document_id, scope, branch)
    frames = {r["idx"]: (r["hash"], r["state"]) for r in rows}
    index = 0
    while True:
        page = await OperationStore.load_range(
            conn, document_id, scope, branch, index, index + PAGE
        )
        for op in page:
            if op.index != index:
                return index, differs(index, "operation", None, None, "missing from the log")
            try:
                digest = replayer.apply(op)
            except Exception as exc:  # a reducer that no longer accepts what it once did
                detail = f"{op.action.type} fails on replay: {exc}"
                return index, differs(index, "operation", op.hash, None, detail)
            if digest != op.hash:
                detail = f"{op.action.type}: stored hash differs from the replayed state's"
                return index, differs(index, "operation", op.hash, digest, detail)
            frame = frames.pop(index, None)
            if frame is not None:
                problem = _frame_problem(frame, digest)
                if problem is not None:
                    return index + 1, differs(index, "keyframe", problem[0], digest, problem[1])
            index += 1
        if len(page) < PAGE:
            break
    if frames:
        extra = min(frames)
        return index, differs(
            extra, "keyframe", frames[extra][0], None, "no operation has its index"
        )
    head = await conn.fetchrow(VIEW_HEAD, document_id, scope, branch)
    if head is None:
        return index, differs(index - 1, "view", None, digest, "the document view has no row")
    if head["revision"] != index:
        detail = f"the view is at revision {head['revision']}, the log has {index} operations"
        return index, differs(index - 1, "view", head["hash"], digest, detail)
    if head["hash"] != digest:
        return index, differs(index - 1, "view", head["hash"], digest, "the view's hash differs")
    stored = state_hash(head["state"])
    if stored != digest:
        detail = "the view's state differs from the replayed state"
        return index, differs(index - 1, "view", stored, digest, detail)
    return index, None


def _frame_problem(frame: tuple[str, Any], digest: str) -> tuple[str, str] | None:
    stored_hash, state = frame
    if stored_hash != digest:
        return stored_hash, "the keyframe's hash differs"
    state_digest = state_hash(state)
    if state_digest != digest:
        return state_digest, "the keyframe's state differs from the replayed state"
    return None
