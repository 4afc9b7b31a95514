"""Writing what a document-scope action changes besides its own state (the
header, and on creation the other scopes' initial states), as the pure
reduction (reactor/domain/reduction.py) returns it. Runs inside the job's
locked transaction, before the next action is reduced, so an error here
(a slug taken, a child added since validation) fails the job at that
action and the transaction writes nothing."""

from __future__ import annotations

import asyncpg

from reactor.domain.reduction import HeaderChange, HeaderCreated, ScopeCreated
from reactor.domain.rejection import JobRejected
from reactor.storage.document_view import DocumentView
from reactor.storage.relationship_index import RelationshipIndex


async def write_header_change(
    conn: asyncpg.Connection, document_id: str, branch: str, change: HeaderChange
) -> None:
    if isinstance(change, HeaderCreated):
        try:
            await DocumentView.create_header(
                conn, document_id, change.document_type, change.slug, change.name, change.at
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
    else:
        if change.deleted:
            await _refuse_delete_under_children(conn, document_id, change.children)
        await DocumentView.update_header(
            conn,
            document_id,
            change.at,
            name=change.name,
            deleted=True if change.deleted else None,
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
