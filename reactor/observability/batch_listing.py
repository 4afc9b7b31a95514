"""Batches as Temporal's visibility API lists them (by their search
attributes), newest first: `reactor batches` prints these rows and
`GET /v1/batches` answers with them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus

from reactor.observability import search_attributes as sa


def quote(value: str) -> str:
    """A string literal of Temporal's list filter."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def batches_query(document: str | None = None, failed: bool = False) -> str:
    clauses = ["WorkflowType = 'BatchWorkflow'"]
    if document is not None:
        # KeywordList '=' means "contains"; only the first ids of a batch are
        # indexed (see reactor.observability.search_attributes).
        clauses.append(f"{sa.DOCUMENT_IDS.name} = {quote(document)}")
    if failed:
        clauses.append(
            f"({sa.FAILED_JOB_COUNT.name} > 0 OR ExecutionStatus IN "
            "('Failed', 'Terminated', 'TimedOut', 'Canceled'))"
        )
    return " AND ".join(clauses)


async def list_batches(
    client: Client, *, document: str | None = None, failed: bool = False, limit: int = 50
) -> list[dict[str, Any]]:
    rows = [
        batch_row(wf)
        async for wf in client.list_workflows(batches_query(document, failed), limit=limit)
    ]
    rows.sort(key=lambda r: r["start_time"] or "", reverse=True)
    return rows


def batch_row(wf: WorkflowExecution) -> dict[str, Any]:
    attrs = wf.typed_search_attributes
    batch_id = attrs.get(sa.BATCH_ID) or wf.id.removeprefix("batch-")
    if wf.status == WorkflowExecutionStatus.RUNNING:
        status = sa.RUNNING
    elif wf.status == WorkflowExecutionStatus.COMPLETED:
        status = attrs.get(sa.STATUS) or sa.COMPLETED
        if status == sa.RUNNING:  # started with attributes, closed before upserting
            status = sa.COMPLETED
    else:
        status = wf.status.name if wf.status is not None else "UNKNOWN"
    return {
        "batch_id": batch_id,
        "workflow_id": wf.id,
        "run_id": wf.run_id,
        "status": status,
        "jobs": attrs.get(sa.JOB_COUNT),
        "failed": attrs.get(sa.FAILED_JOB_COUNT),
        "document_ids": list(attrs.get(sa.DOCUMENT_IDS) or []),
        "document_types": list(attrs.get(sa.DOCUMENT_TYPES) or []),
        "task_queue": wf.task_queue,
        "start_time": _iso(wf.start_time),
        "close_time": _iso(wf.close_time),
    }


def _iso(value: datetime | None) -> str | None:
    return value.astimezone().isoformat(timespec="seconds") if value is not None else None
