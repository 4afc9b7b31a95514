"""In-process locks per document lane.

Jobs on one document are ordered by the workflow, but jobs of *different*
batches on the same document may run at once in one worker. Queuing them
here, before they touch PostgreSQL, means each one starts from the head the
previous one left in the write cache: no wasted optimistic write, no head
reload, no re-validation. PostgreSQL's lock stays the arbiter between
processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager


class LaneLocks:
    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
