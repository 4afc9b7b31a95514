"""Writing what a document-scope action changes besides its own state (the
header, and on creation the other scopes' initial states), as the pure
reduction (reactor/domain/reduction.py) returns it. Runs inside the job's
locked transaction, before the next action is reduced, so an error here
(a slug taken, a child added since validation) fails the job at that
action and the transaction writes nothing."""

from __future__ import annotations

import asyncpg

from reactor.domain.lane_reducer import LaneReducer
from reactor.domain.reduction import HeaderChange, HeaderCreated, ScopeCreated, ScopeUpgraded
from reactor.domain.rejection import JobRejected
from reactor.domain.upgrades import UpgradeError
from reactor.storage.document_view import DocumentView
from reactor.storage.operation_store import OperationStore
from reactor.storage.relationship_index import RelationshipIndex


async def write_header_change(
    conn: asyncpg.Connection, document_id: str, branch: str, change: HeaderChange
) -> None:
    if isinstance(change, HeaderCreated):
        try:
            await DocumentView.create_header(
                conn,
                document_id,
                change.document_type,
                change.slug,
                change.name,
                change.at,
                change.model_version,
            )
        except asyncpg.UniqueViolationError as exc:
            if "slug" in (exc.constraint_name or ""):
                raise JobRejected(
                    "SlugTaken", f"slug {change.slug!r} is already used by another document"
                ) from exc
            raise
    elif isinstance(change, ScopeCreated):
        await DocumentView.put_state(
            conn, document_id, change.scope, branch, 0, change.hash, change.state
        )
    elif isinstance(change, ScopeUpgraded):
        await _upgrade_scope(conn, document_id, branch, change)
    else:
        if change.deleted:
            await _refuse_delete_under_children(conn, document_id, change.children)
        await DocumentView.update_header(
            conn,
            document_id,
            change.at,
            name=change.name,
            deleted=True if change.deleted else None,
            model_version=change.model_version,
        )


async def _upgrade_scope(
    conn: asyncpg.Connection, document_id: str, branch: str, change: ScopeUpgraded
) -> None:
    """Appends the scope's UPGRADE_DOCUMENT operation, with the hash of the
    stepped state, and moves the scope's view to it. The document's lane lock
    (document and branch) is held, so the scope's head cannot move meanwhile.
    No keyframe is written: the view holds the new head, and replay from an
    earlier keyframe steps through the operation."""
    head = await DocumentView.head(conn, document_id, change.scope, branch)
    if head is None:
        raise JobRejected("DocumentNotFound", f"document {document_id!r} has no {change.scope}")
    revision, state = head
    where = f"UPGRADE_DOCUMENT in scope {change.scope!r}"
    try:
        lane = LaneReducer(change.model, change.scope, state)
        lane.reduce(change.action)
    except UpgradeError as exc:
        raise JobRejected(exc.error_type, f"{where}: {exc}") from exc
    except Exception as exc:  # the upgraded state fails the model's schema
        raise JobRejected.of_model(exc, where) from exc
    try:
        digest = lane.digest()
    except Exception as exc:
        raise JobRejected.of_serialization(exc, where) from exc
    await OperationStore.append_one(
        conn,
        document_id,
        change.scope,
        branch,
        revision,
        digest,
        change.action,
        change.operation_id,
        change.job_id,
    )
    await DocumentView.put_state(
        conn, document_id, change.scope, branch, revision + 1, digest, lane.state()
    )


async def _refuse_delete_under_children(
    conn: asyncpg.Connection, document_id: str, explicit: tuple[str, ...]
) -> None:
    """A parent is never deleted under its children. Validation counts the
    edges it can see and the batch's ADD_RELATIONSHIPs, and the document
    scope's reducer its explicit children; neither sees a child another
    scope's model added since (a drive's ADD_FILE earlier in the batch, or in
    a concurrent one). Those edges are written by jobs on this document's
    lane, whose lock is held here, so the count is current."""
    count = await RelationshipIndex.count_at_delete(conn, document_id, explicit)
    if count:
        raise JobRejected(
            "HasChildren",
            f"DELETE_DOCUMENT: document {document_id!r} has {count} "
            f"child{'ren' if count != 1 else ''} (remove them first: REMOVE_RELATIONSHIP, or "
            "the model's own actions for the children its state holds)",
        )
