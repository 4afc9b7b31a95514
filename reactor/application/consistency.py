"""Read-after-write: wait until every coordinate of a consistency token is
indexed by the document view and by every registered read model."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from reactor.application.wakeup import Wakeup
from reactor.domain.errors import ConsistencyTimeoutError
from reactor.domain.jobs import ConsistencyToken, Coordinate
from reactor.storage.database import Database
from reactor.storage.operation_store import OperationStore, Position

POLL_FALLBACK = 0.1  # seconds: lost notifications cost at most this much


class ConsistencyWaiter:
    def __init__(self, db: Database, read_model_names: Sequence[str], wakeup: Wakeup):
        self.db = db
        self.read_model_names = list(read_model_names)
        self.wakeup = wakeup

    async def wait(self, token: ConsistencyToken, timeout: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            behind = await self.behind(token)
            if behind is None:
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                coord, by = behind
                raise ConsistencyTimeoutError(
                    f"consistency token not satisfied after {timeout:g}s: document "
                    f"{coord.document_id!r} scope {coord.scope!r} branch {coord.branch!r} "
                    f"operation {coord.operation_index} is not yet indexed by {by}",
                    coordinate=coord,
                    behind=by,
                )
            await self.wakeup.wait(min(remaining, POLL_FALLBACK))

    async def behind(self, token: ConsistencyToken) -> tuple[Coordinate, str] | None:
        """The first coordinate not yet indexed, and by whom; None if all are."""
        async with self.db.pool.acquire() as conn:
            seen: dict[str, Position] = {}
            if self.read_model_names:
                rows = await conn.fetch(
                    "SELECT name, last_tx::text::bigint AS tx, last_ordinal "
                    "FROM reactor_read_model_tracking WHERE name = ANY($1)",
                    self.read_model_names,
                )
                seen = {r["name"]: Position(r["tx"], r["last_ordinal"]) for r in rows}
            for coord in token.coordinates:
                revision = await conn.fetchval(
                    "SELECT revision FROM reactor_document_states "
                    "WHERE document_id = $1 AND scope = $2 AND branch = $3",
                    coord.document_id,
                    coord.scope,
                    coord.branch,
                )
                if revision is None or revision <= coord.operation_index:
                    return coord, "the document view"
                if not self.read_model_names:
                    continue
                pos = await OperationStore.position_of(
                    conn, coord.document_id, coord.scope, coord.branch, coord.operation_index
                )
                assert pos is not None
                for name in self.read_model_names:
                    if seen.get(name, Position()) < pos:
                        return coord, f"read model {name!r}"
        return None
