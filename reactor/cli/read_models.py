"""`reactor read-models`: show read models and how far they indexed; unblock
one that kept failing."""

from __future__ import annotations

import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from reactor.application.read_models import ReadModelState, read_model_states, unblock_read_model
from reactor.domain.errors import ValidationError
from reactor.runtime.settings import load_settings
from reactor.storage.database import Database

console = Console()


async def read_models(*, as_json: bool, unblock: str | None) -> int:
    db = await Database.connect(load_settings().database_url, max_size=1)
    try:
        async with db.pool.acquire() as conn:
            if unblock is not None:
                if await unblock_read_model(conn, unblock):
                    console.print(
                        f"unblocked read model {escape(unblock)}: the next batch a worker "
                        "applies catches it up from where it stopped"
                    )
                    return 0
                known = {s.name: s for s in await read_model_states(conn)}
                raise ValidationError(_not_unblocked(unblock, known), field="name")
            states = await read_model_states(conn)
    finally:
        await db.close()
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "name": s.name,
                        "position": [s.position.tx_id, s.position.ordinal],
                        "attempts": s.attempts,
                        "last_error": s.last_error,
                        "blocked": s.blocked,
                        "blocked_error": s.blocked_error,
                        "blocked_at": s.blocked_at.isoformat() if s.blocked_at else None,
                    }
                    for s in states
                ]
            )
        )
        return 0
    table = Table(title="read models")
    for col in ("read model", "state", "position", "failures in a row", "error"):
        table.add_column(col, overflow="fold")
    for s in states:
        state = "[bold red]BLOCKED[/]" if s.blocked else "[green]indexing[/]"
        error = s.blocked_error or s.last_error or ""
        position = f"{s.position.tx_id}/{s.position.ordinal}"
        # Names and errors are data (an exception's text may hold "[/x]"), not markup.
        table.add_row(escape(s.name), state, position, str(s.attempts), escape(error))
    console.print(table)
    blocked = [s.name for s in states if s.blocked]
    if blocked:
        console.print(
            f"{len(blocked)} blocked read model(s): fix the read model, restart the workers, "
            "then `reactor read-models unblock NAME`"
        )
    return 0


def _not_unblocked(name: str, known: dict[str, ReadModelState]) -> str:
    """Why `unblock NAME` changed nothing: a usage error (exit 2), not a
    failed job (exit 1)."""
    if name in known:
        return f"read model {name!r} is not blocked: nothing to unblock"
    names = ", ".join(sorted(known)) or "none yet"
    return f"no read model named {name!r} (tracked: {names})"
