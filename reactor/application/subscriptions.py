"""Document change subscriptions, across processes.

A single tail over the global log per reactor, from "now", in visible order
(so nothing committed late is skipped). It is woken by commit NOTIFYs from
any process and also polls, so delivery never depends on the notification.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from reactor.application.wakeup import Wakeup
from reactor.domain.document import Document, Operation
from reactor.storage.database import Database
from reactor.storage.document_view import DocumentView
from reactor.storage.operation_index import OperationIndex
from reactor.storage.operation_store import OperationStore, Position

log = logging.getLogger("reactor.subscriptions")

ChangeKind = Literal["created", "updated", "deleted", "relationship"]

KIND_OF_ACTION: dict[str, ChangeKind] = {
    "CREATE_DOCUMENT": "created",
    "DELETE_DOCUMENT": "deleted",
    "ADD_RELATIONSHIP": "relationship",
    "REMOVE_RELATIONSHIP": "relationship",
}


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


@dataclass
class _Subscription:
    search: SearchFilter
    callback: Callback
    queue: asyncio.Queue[DocumentChange] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


class SubscriptionManager:
    def __init__(self, db: Database, wakeup: Wakeup, *, poll_interval: float = 0.5):
        self.db = db
        self.view = DocumentView(db)
        self.wakeup = wakeup
        self.poll_interval = poll_interval
        self._subs: list[_Subscription] = []
        self._tail: asyncio.Task[None] | None = None
        self._position: Position | None = None

    async def subscribe(
        self, search: SearchFilter | dict[str, Any], callback: Callback
    ) -> Callable[[], None]:
        sub = _Subscription(SearchFilter.model_validate(search), callback)
        sub.task = asyncio.create_task(self._deliver(sub))
        if self._tail is None:
            self._position = await self._head()
            self._tail = asyncio.create_task(self._run(), name="reactor-subscriptions")
        self._subs.append(sub)

        def unsubscribe() -> None:
            if sub in self._subs:
                self._subs.remove(sub)
            if sub.task is not None:
                sub.task.cancel()

        return unsubscribe

    async def close(self) -> None:
        tasks = [s.task for s in self._subs if s.task] + ([self._tail] if self._tail else [])
        self._subs.clear()
        self._tail = None
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _head(self) -> Position:
        return await OperationIndex(self.db).head()

    async def _run(self) -> None:
        while True:
            try:
                await self._drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("subscription tail failed; retrying")
            await self.wakeup.wait(self.poll_interval)

    async def _drain(self) -> None:
        assert self._position is not None
        while self._subs:
            async with self.db.pool.acquire() as conn:
                rows = await OperationStore.read_visible(conn, self._position, 500)
            if not rows:
                return
            self._position = rows[-1][0]
            for change in await self._changes([op for _, op in rows]):
                for sub in list(self._subs):
                    if await self._matches(sub.search, change):
                        sub.queue.put_nowait(change)

    async def _changes(self, ops: list[Operation]) -> list[DocumentChange]:
        """Coalesces consecutive operations of one document and kind."""
        types = await self.view.existing(sorted({o.document_id for o in ops}))
        changes: list[DocumentChange] = []
        for op in ops:
            kind = (
                KIND_OF_ACTION.get(op.action.type, "updated")
                if op.scope == "document"
                else "updated"
            )
            last = changes[-1] if changes else None
            if last is not None and last.document_id == op.document_id and last.kind == kind:
                last.operations.append(op)
                continue
            doc_type = types.get(op.document_id, ("", False))[0]
            changes.append(
                DocumentChange(
                    kind=kind, document_id=op.document_id, document_type=doc_type, operations=[op]
                )
            )
        for change in changes:
            if change.kind in ("created", "updated"):
                change.document = await self.view.get(change.document_id)
        return changes

    async def _matches(self, search: SearchFilter, change: DocumentChange) -> bool:
        parents: list[str] = []
        if search.parent_id is not None and search.parent_id != change.document_id:
            async with self.db.pool.acquire() as conn:
                linked = await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM reactor_relationships WHERE parent_id = $1 "
                    "AND child_id = $2)",
                    search.parent_id,
                    change.document_id,
                )
            parents = [search.parent_id] if linked else []
        return search.matches(change.document_id, change.document_type, parents)

    @staticmethod
    async def _deliver(sub: _Subscription) -> None:
        """One queue per subscription: a slow callback delays only itself."""
        while True:
            change = await sub.queue.get()
            try:
                result = sub.callback(change)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("subscription callback failed")
