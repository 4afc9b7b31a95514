"""Rebuilding a state from the log: nearest keyframe, then replay.

Used to read a document at a past revision; each replayed hash is checked
against the stored one on the way (reactor/application/verify.py checks a
whole document from its first operation). An operation with a skip reaches
back before any keyframe (reactor/domain/history.py): such a range is
replayed from the first operation."""

from __future__ import annotations

from typing import Any

from reactor.domain.errors import DocumentNotFoundError
from reactor.domain.history import Replayer
from reactor.domain.lane_reducer import LaneReducer
from reactor.domain.model import ModelRegistry
from reactor.storage.database import Database
from reactor.storage.keyframe_store import KeyframeStore
from reactor.storage.operation_store import OperationStore

DOCUMENT_TYPE = "SELECT document_type FROM reactor_documents WHERE id = $1"
# The view knows the head revision; max(idx) would scan the document's index
# range when statistics are stale.
VIEW_REVISION = (
    "SELECT revision FROM reactor_document_states "
    "WHERE document_id = $1 AND scope = $2 AND branch = $3"
)
LOG_REVISION = (
    "SELECT idx + 1 FROM reactor_operations WHERE document_id = $1 AND scope = $2 "
    "AND branch = $3 ORDER BY idx DESC LIMIT 1"
)


async def rebuild_state(
    db: Database,
    registry: ModelRegistry,
    document_id: str,
    scope: str,
    branch: str = "main",
    *,
    revision: int | None = None,
    use_keyframes: bool = True,
) -> tuple[int, str, dict[str, Any]]:
    """(revision, hash, state) after the first `revision` operations (all of
    them when None). Raises if a replayed hash differs from the stored one."""
    async with db.pool.acquire() as conn:
        doc_type = await conn.fetchval(DOCUMENT_TYPE, document_id)
        if doc_type is None:
            raise DocumentNotFoundError(f"document {document_id!r} not found")
        if revision is None:
            revision = await conn.fetchval(VIEW_REVISION, document_id, scope, branch)
            if revision is None:
                revision = await conn.fetchval(LOG_REVISION, document_id, scope, branch) or 0
        assert revision is not None
        model = registry.get(doc_type)
        lane = LaneReducer.initial(model, scope)
        digest = lane.digest()
        start = 0
        if use_keyframes and revision > 0:
            frame = await KeyframeStore.nearest(conn, document_id, scope, branch, revision - 1)
            if frame is not None:
                start, digest = frame[0] + 1, frame[1]
                lane = LaneReducer(model, scope, frame[2])
        ops = await OperationStore.load_range(conn, document_id, scope, branch, start, revision)
        if start > 0 and any(op.skip > 0 for op in ops):
            start, lane = 0, LaneReducer.initial(model, scope)
            digest = lane.digest()
            ops = await OperationStore.load_range(conn, document_id, scope, branch, 0, revision)
    replayer = Replayer(model, scope, lane, start)
    for op in ops:
        digest = replayer.apply(op)
        if digest != op.hash:
            raise AssertionError(
                f"replay of {document_id}/{scope}/{branch} diverged at index {op.index}: "
                f"stored hash {op.hash}, replayed {digest}"
            )
    return revision, digest, replayer.lane.state()
