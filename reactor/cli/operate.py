"""Operating a reactor: `reactor batches` (Temporal's visibility API),
`reactor doctor` (health) and `reactor setup-search-attributes`."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from reactor.domain.errors import ReactorError
from reactor.observability import search_attributes as sa
from reactor.observability.batch_listing import list_batches
from reactor.observability.health import Check, diagnose
from reactor.runtime.settings import SEARCH_ATTRIBUTES, load_settings, stack_from_env
from reactor.runtime.temporal import connect

console = Console()
err_console = Console(stderr=True)

STATUS_STYLE = {
    sa.RUNNING: "yellow",
    sa.COMPLETED: "green",
    sa.COMPLETED_WITH_FAILURES: "bold red",
}


def temporal_target(address: str | None, namespace: str | None) -> tuple[str, str]:
    """--address/--namespace, else REACTOR_TEMPORAL_*, else a `reactor dev` here."""
    env = stack_from_env()
    address = address or env.get("temporal_address")
    namespace = namespace or env.get("namespace")
    if address is None:
        settings = load_settings()
        address, namespace = settings.temporal_address, namespace or settings.namespace
    return address, namespace or "default"


# -- reactor batches ----------------------------------------------------------


def batches_table(rows: list[dict[str, Any]], title: str | None = None) -> Table:
    table = Table(title=title)
    table.add_column("batch", overflow="fold")
    table.add_column("status")
    table.add_column("jobs", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("documents", overflow="fold")
    table.add_column("started")
    for r in rows:
        docs = r["document_ids"]
        shown = ", ".join(docs[:3]) + (f" +{len(docs) - 3}" if len(docs) > 3 else "")
        if r["document_types"]:
            shown += f" [dim]({', '.join(t.rsplit('/', 1)[-1] for t in r['document_types'])})[/dim]"
        failed = r["failed"]
        table.add_row(
            r["batch_id"],
            f"[{STATUS_STYLE.get(r['status'], 'red')}]{r['status']}[/]",
            "-" if r["jobs"] is None else str(r["jobs"]),
            "-" if failed is None else (f"[red]{failed}[/red]" if failed else "0"),
            shown or "-",
            (r["start_time"] or "-")[:19].replace("T", " "),
        )
    return table


async def batches(
    *,
    document: str | None,
    failed: bool,
    as_json: bool,
    limit: int,
    address: str | None = None,
    namespace: str | None = None,
) -> int:
    target, ns = temporal_target(address, namespace)
    client = await connect(target, ns)
    rows = await list_batches(client, document=document, failed=failed, limit=limit)
    if as_json:
        print(json.dumps(rows))
    elif not rows:
        err_console.print("no batches match")
    else:
        console.print(batches_table(rows))
    return 0


# -- reactor doctor -----------------------------------------------------------


async def doctor(*, quiet: bool, as_json: bool, timeout: float = 5.0) -> int:
    """Exit 0 when healthy, 1 otherwise; every failed check names its fix."""
    try:
        settings = load_settings()
    except ReactorError as exc:
        checks = [Check("configuration", False, "no reactor stack configured", str(exc))]
    else:
        checks = await diagnose(settings, timeout=timeout)
    healthy = all(c.ok for c in checks)
    if as_json:
        print(json.dumps({"healthy": healthy, "checks": [c.as_dict() for c in checks]}))
    elif quiet:
        for c in checks:
            if not c.ok:
                print(f"reactor doctor: {c.name}: {c.detail}; fix: {c.fix}", file=sys.stderr)
    else:
        table = Table(show_header=False, box=None)
        for c in checks:
            mark = "[green]✓[/green]" if c.ok else "[bold red]✗[/bold red]"
            table.add_row(mark, f"[bold]{c.name}[/bold]", c.detail)
            if not c.ok and c.fix:
                table.add_row("", "", f"[yellow]fix:[/yellow] {c.fix}")
        console.print(table)
        console.print("[green]healthy[/green]" if healthy else "[bold red]unhealthy[/bold red]")
    return 0 if healthy else 1


# -- reactor setup-search-attributes ------------------------------------------


async def setup_search_attributes(
    *, address: str | None = None, namespace: str | None = None
) -> int:
    """Registers the reactor's search attributes in a namespace (idempotent)."""
    target, ns = temporal_target(address, namespace)
    client = await connect(target, ns)
    try:
        outcome = await sa.register(client, ns)
    except ValueError as exc:
        err_console.print(
            f"[bold red]cannot register[/bold red] in namespace {ns!r}: {exc} "
            "(a type cannot change: remove the attribute first)"
        )
        return 1
    for name, what in outcome.items():
        console.print(f"{name:<24} {SEARCH_ATTRIBUTES[name]:<12} {what}")
    return 0
