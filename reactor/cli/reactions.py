"""`reactor reactions`: show reaction streams; unblock a poison stream."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from reactor.domain.errors import ValidationError
from reactor.reactions.store import ReactionStore
from reactor.runtime.settings import load_settings
from reactor.storage.database import Database

console = Console()


async def reactions(
    name: str | None, *, blocked_only: bool, as_json: bool, unblock: tuple[str, str] | None
) -> int:
    db = await Database.connect(load_settings().database_url, max_size=1)
    try:
        store = ReactionStore(db)
        if unblock is not None:
            reaction, document_id = unblock
            if await store.unblock(reaction, document_id):
                console.print(
                    f"unblocked {reaction} / {document_id}: it retries from where it stopped"
                )
                return 0
            # A usage error (exit 2), not a failed job (exit 1).
            raise ValidationError(
                f"{reaction} / {document_id} is not a blocked stream: nothing to unblock",
                field="name",
            )
        streams = await store.streams(name, blocked_only=blocked_only)
        if as_json:
            print(json.dumps([s.__dict__ for s in streams], default=str))
            return 0
        table = Table(title="reaction streams" + (" (blocked)" if blocked_only else ""))
        for col in ("reaction", "document", "state", "attempts", "lease", "last error"):
            table.add_column(col, overflow="fold")
        for s in streams:
            state = (
                "[bold red]BLOCKED[/]"
                if s.blocked
                else "[yellow]pending[/]"
                if s.pending
                else "[green]caught up[/]"
            )
            lease = (
                f"{s.leased_by} until {s.lease_until:%H:%M:%S}"
                if s.leased_by and s.lease_until
                else ""
            )
            table.add_row(s.name, s.document_id, state, str(s.attempts), lease, s.last_error or "")
        console.print(table)
        blocked = sum(1 for s in streams if s.blocked)
        if blocked:
            console.print(
                f"{blocked} blocked stream(s): fix the handler, then "
                "`reactor reactions unblock NAME DOCUMENT_ID`"
            )
        return 0
    finally:
        await db.close()
