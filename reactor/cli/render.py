"""What people would rather see than read: job tables, document trees."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from reactor.api.views import BatchJobs
from reactor.domain.document import Document, Operation
from reactor.domain.jobs import JobInfo, JobStatus

STATUS_STYLE = {
    JobStatus.PENDING: "dim",
    JobStatus.RUNNING: "yellow",
    JobStatus.WRITE_READY: "cyan",
    JobStatus.READ_READY: "green",
    JobStatus.FAILED: "bold red",
}


def job_table(jobs: Iterable[JobInfo], title: str | None = None) -> Table:
    table = Table(title=title, show_lines=False)
    for col in ("job", "document", "status", "ops"):
        table.add_column(col)
    table.add_column("id / error", overflow="fold")
    for job in jobs:
        ops = len(job.consistency_token.coordinates) if job.consistency_token else 0
        detail = (
            f"[red]{job.error.type}: {job.error.message}[/red]"
            if job.error
            else f"[dim]{job.id}[/dim]"
        )
        table.add_row(
            job.key,
            job.document_id,
            f"[{STATUS_STYLE[job.status]}]{job.status.value}[/]",
            str(ops),
            detail,
        )
    return table


def jobs_json(batch_id: str, jobs: Iterable[JobInfo]) -> str:
    return json.dumps(BatchJobs.of(batch_id, jobs).model_dump(mode="json"))


def document_panel(doc: Document) -> Tree:
    h = doc.header
    revisions = ", ".join(f"{k}={v}" for k, v in sorted(h.revision.items()))
    label = f"[bold]{h.name or h.id}[/bold] [dim]{h.document_type}[/dim] id={h.id}"
    if h.slug:
        label += f" slug={h.slug}"
    tree = Tree(label)
    tree.add(f"revision: {revisions}")
    for scope, state in sorted(doc.state.items()):
        if state:
            tree.add(f"{scope}: {json.dumps(state, sort_keys=True)}")
    return tree


def documents_tree(root: Document, children: list[Document]) -> Tree:
    tree = document_panel(root)
    for child in children:
        tree.add(document_panel(child))
    return tree


def operations_table(ops: Iterable[Operation]) -> Table:
    table = Table()
    for col in ("ordinal", "scope", "index", "type", "input", "hash"):
        table.add_column(col)
    for op in ops:
        table.add_row(
            str(op.ordinal),
            op.scope,
            str(op.index),
            op.action.type,
            json.dumps(op.action.input, sort_keys=True),
            op.hash[:12],
        )
    return table


def print_json(console: Console, value: Any) -> None:
    console.print_json(json.dumps(value, default=str))
