"""The stores over one database, opened once per process (by the builder)
and shared by its reactor, its workers and its tooling."""

from __future__ import annotations

from dataclasses import dataclass

from reactor.storage.database import Database
from reactor.storage.document_view import DocumentView
from reactor.storage.job_ledger import JobLedger
from reactor.storage.keyframe_store import KeyframeStore
from reactor.storage.notify import NotifyListener
from reactor.storage.operation_index import OperationIndex
from reactor.storage.operation_store import OperationStore
from reactor.storage.relationship_index import RelationshipIndex


@dataclass(frozen=True)
class Stores:
    database: Database
    documents: DocumentView
    operations: OperationStore
    relationships: RelationshipIndex
    ledger: JobLedger
    keyframes: KeyframeStore
    operation_index: OperationIndex

    @classmethod
    def over(cls, db: Database, listener: NotifyListener | None = None) -> Stores:
        """With `listener`, the operation store's `notify` shares its LISTEN
        connection instead of opening one."""
        return cls(
            database=db,
            documents=DocumentView(db),
            operations=OperationStore(db, notify=listener is not None, listener=listener),
            relationships=RelationshipIndex(db),
            ledger=JobLedger(db),
            keyframes=KeyframeStore(db),
            operation_index=OperationIndex(db),
        )
