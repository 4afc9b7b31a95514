"""Commits through the apply path directly (this process's own commit, with
NOTIFY), as another process's writer would: no Temporal involved."""

from __future__ import annotations

import itertools
from typing import Any

from reactor.application.apply import JobApplier
from reactor.domain.batch import BatchRequest, ExistingDocument, PlannedJob, plan_batch
from reactor.domain.jobs import JobOutcome
from reactor.runtime.worker import registry_of
from reactor.storage.database import Database
from reactor.storage.document_view import DocumentView
from reactor.storage.notify import channel_name

_batches = itertools.count()


async def plan_job(
    db: Database,
    document_id: str,
    actions: list[dict[str, Any]],
    scope: str = "global",
    prefix: str = "direct",
) -> tuple[str, PlannedJob]:
    """A one-job batch planned against the documents as they are now: (batch id, job)."""
    found = await DocumentView(db).existing([document_id])
    existing = {k: ExistingDocument(t, d) for k, (t, d) in found.items()}
    request = BatchRequest.model_validate(
        {
            "batch_id": f"{prefix}-{next(_batches)}",
            "jobs": [{"key": "j", "document_id": document_id, "scope": scope, "actions": actions}],
        }
    )
    plan = plan_batch(request, registry_of(), existing)
    return plan.batch_id, plan.jobs[0]


class DirectWriter:
    def __init__(self, db: Database, *, notify: bool = True, instance_id: str | None = None):
        self.db = db
        self.registry = registry_of()
        self.applier = JobApplier(
            db,
            self.registry,
            notify_channel=channel_name() if notify else None,
            instance_id=instance_id,
        )

    async def commit(
        self, document_id: str, actions: list[dict[str, Any]], scope: str = "global"
    ) -> JobOutcome:
        batch_id, job = await plan_job(self.db, document_id, actions, scope, f"direct-{id(self)}")
        outcome = await self.applier.apply(batch_id, job)
        assert outcome.ok, outcome.error
        return outcome

    async def create_list(self, document_id: str) -> None:
        await self.commit(
            document_id,
            [{"type": "CREATE_DOCUMENT", "input": {"document_type": "powerhouse/todo-list"}}],
            scope="document",
        )

    async def add_items(self, document_id: str, ids: list[str]) -> JobOutcome:
        return await self.commit(
            document_id,
            [{"type": "ADD_TODO_ITEM", "input": {"id": i, "text": f"item {i}"}} for i in ids],
        )
