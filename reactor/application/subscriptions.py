"""Document change subscriptions, across processes.

Each subscription is a reader of the process's one `ChangeFeed` (shared with
the HTTP event stream), from "now", in visible order, so nothing committed
late is skipped and every process's commits arrive (NOTIFY-woken, polled as
the safety net). Consecutive operations of one document and kind that a
subscription receives together are one `DocumentChange`.

Each subscription pulls from its own reader in its own task: a slow callback
delays only itself, and the shared tail never waits for it. Its reader's
queue is bounded; a subscription that falls that far behind is dropped by
the tail and re-opens from the last operation it delivered, catching up from
the database at its own pace. Memory stays bounded and nothing is lost or
delivered twice.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Literal

from pydantic import BaseModel, Field

from reactor.application.change_feed import ChangeFeed, FeedClosed, FeedEvent, Overflowed
from reactor.domain.document import Document, Operation
from reactor.storage.document_view import DocumentView
from reactor.storage.errors import is_transient, one_line
from reactor.storage.operation_store import Position

log = logging.getLogger("reactor.subscriptions")

ChangeKind = Literal["created", "updated", "deleted", "relationship"]

KIND_OF_ACTION: dict[str, ChangeKind] = {
    "CREATE_DOCUMENT": "created",
    "DELETE_DOCUMENT": "deleted",
    "ADD_RELATIONSHIP": "relationship",
    "REMOVE_RELATIONSHIP": "relationship",
}

WAIT_S = 30.0  # how long one wait on the reader lasts (it is simply repeated)
RETRY_S = (0.1, 5.0)  # backoff after a failed catch-up read: first, cap


class SearchFilter(BaseModel):
    type: str | None = None
    ids: list[str] | None = None
    parent_id: str | None = None

    def matches(self, document_id: str, document_type: str, parents: Collection[str]) -> bool:
        """`parents` are the document's parents; a parent filter takes the
        parent's own changes too (its relationship actions among them)."""
        if self.type is not None and document_type != self.type:
            return False
        if self.ids is not None and document_id not in self.ids:
            return False
        return self.parent_id is None or (
            document_id == self.parent_id or self.parent_id in parents
        )


class DocumentChange(BaseModel):
    kind: ChangeKind
    document_id: str
    document_type: str
    operations: list[Operation] = Field(default_factory=list)
    document: Document | None = None  # the current document, for created/updated


Callback = Callable[[DocumentChange], None | Awaitable[None]]


def kind_of(op: Operation) -> ChangeKind:
    if op.scope != "document":
        return "updated"
    return KIND_OF_ACTION.get(op.action.type, "updated")


def coalesce(events: list[FeedEvent]) -> list[tuple[DocumentChange, Position]]:
    """Consecutive operations of one document and kind are one change; each
    with the position of its last operation."""
    changes: list[tuple[DocumentChange, Position]] = []
    for event in events:
        op, kind = event.operation, kind_of(event.operation)
        last = changes[-1][0] if changes else None
        if last is not None and last.document_id == op.document_id and last.kind == kind:
            last.operations.append(op)
            changes[-1] = (last, event.position)
            continue
        change = DocumentChange(
            kind=kind,
            document_id=op.document_id,
            document_type=event.document_type,
            operations=[op],
        )
        changes.append((change, event.position))
    return changes


class SubscriptionManager:
    """`subscribe(search, callback)`: one feed reader and one task per
    subscription. A subscription whose reader overflows (its callback fell
    `max_queued` operations behind the tail) re-opens from the last change it
    delivered and catches up from the database: bounded memory, nothing lost,
    nothing twice."""

    def __init__(self, feed: ChangeFeed, *, max_queued: int | None = None):
        """`max_queued`: operations a subscription may have waiting (the
        feed's bound when None)."""
        self.feed = feed
        self.view = DocumentView(feed.db)
        self.max_queued = max_queued
        self._tasks: set[asyncio.Task[None]] = set()
        self.reopened = 0  # subscriptions that overflowed and caught up again

    async def subscribe(
        self, search: SearchFilter | dict[str, Any], callback: Callback
    ) -> Callable[[], None]:
        """Changes committed from now on that match `search`, to `callback`
        in log order; the returned function ends the subscription."""
        search = SearchFilter.model_validate(search)
        start = await self.feed.head()
        task = asyncio.create_task(self._run(search, callback, start), name="reactor-subscription")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

        def unsubscribe() -> None:
            task.cancel()

        return unsubscribe

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, search: SearchFilter, callback: Callback, after: Position) -> None:
        """Reads from `after`, re-opening after an overflow or a failed read
        from the last position delivered."""

        def match(event: FeedEvent) -> bool:
            return search.matches(event.operation.document_id, event.document_type, event.parents)

        failures = 0
        while True:
            try:
                async with self.feed.open(
                    match,
                    after=after,
                    needs_parents=search.parent_id is not None,
                    max_queued=self.max_queued,
                ) as reader:
                    while True:
                        events = await reader.next(WAIT_S)
                        failures = 0
                        for change, position in coalesce(events):
                            await self._deliver(callback, change)
                            after = position
            except Overflowed:
                self.reopened += 1
                log.info("a subscription fell behind; catching up from the database")
            except FeedClosed:
                return
            except Exception as exc:  # noqa: BLE001 - re-opened from where it was
                delay = min(RETRY_S[0] * 2**failures, RETRY_S[1])
                failures += 1
                log.warning(
                    "subscription read failed (retrying in %.1fs): %s", delay, one_line(exc)
                )
                await asyncio.sleep(delay)

    async def _deliver(self, callback: Callback, change: DocumentChange) -> None:
        if change.kind in ("created", "updated"):
            try:
                change.document = await self.view.get(change.document_id)
            except Exception as exc:
                if is_transient(exc):
                    raise  # the subscription re-opens at this change
                # It would fail the same way again: the change goes out
                # without its document rather than hold the subscription.
                log.warning("subscription: %s unreadable: %s", change.document_id, one_line(exc))
        try:
            result = callback(change)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("subscription callback failed")
