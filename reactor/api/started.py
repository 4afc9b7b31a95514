"""The batches a reactor started and has not seen finish, and the
submissions still on their way to a start.

`Reactor.kill()` awaits both: a submission accepted before the kill either
fails or starts its batch, and that batch is awaited too. A wait on a batch
reuses its handle. A
batch is forgotten when someone in this process sees its result. A reactor
that submits and never waits (it follows its documents through
subscriptions, say) would keep every handle for ever; so once more than
`limit` are held, the reactor asks Temporal which of them have closed
(`describe`, at most `CONCURRENCY` at a time, in the background) and forgets
those. The next check comes only after another `limit // 2` submissions, so
a reactor with many batches genuinely open does not check on every one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

log = logging.getLogger("reactor.batches")

LIMIT = 1_000
CONCURRENCY = 16


class StartedBatches:
    def __init__(self, limit: int = LIMIT):
        self.limit = limit
        self._handles: dict[str, WorkflowHandle[Any, Any]] = {}
        self._check_at = limit
        self._checking: asyncio.Task[None] | None = None
        self.forgotten_closed = 0  # how many a check forgot, for tests and operators
        self.in_flight = 0  # submissions accepted and not yet failed or started
        self._settled: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._handles)

    @contextmanager
    def submitting(self) -> Iterator[None]:
        """Around a submission, from the moment it was accepted until it
        failed or its batch was remembered."""
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            if self.in_flight == 0 and self._settled is not None:
                if not self._settled.done():
                    self._settled.set_result(None)
                self._settled = None

    async def settled(self) -> None:
        """Returns once no submission is in flight."""
        if self.in_flight == 0:
            return
        if self._settled is None:
            self._settled = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._settled)

    def get(self, batch_id: str) -> WorkflowHandle[Any, Any] | None:
        return self._handles.get(batch_id)

    def handles(self) -> list[WorkflowHandle[Any, Any]]:
        return list(self._handles.values())

    def remember(self, batch_id: str, handle: WorkflowHandle[Any, Any]) -> None:
        self._handles[batch_id] = handle
        if len(self._handles) > self._check_at and self._checking is None:
            self._checking = asyncio.create_task(self._forget_closed())

    def forget(self, batch_id: str) -> None:
        self._handles.pop(batch_id, None)

    def clear(self) -> None:
        self._handles.clear()

    async def checked(self) -> None:
        """Returns once a check in progress (if any) is done."""
        if self._checking is not None:
            await asyncio.shield(self._checking)

    async def close(self) -> None:
        if self._checking is not None:
            self._checking.cancel()
            await asyncio.gather(self._checking, return_exceptions=True)

    async def _forget_closed(self) -> None:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def check(batch_id: str, handle: WorkflowHandle[Any, Any]) -> None:
            async with gate:
                try:
                    status = (await handle.describe()).status
                except RPCError as exc:
                    log.debug("could not describe batch %s (%s)", batch_id, exc)
                    return
            if status not in (None, WorkflowExecutionStatus.RUNNING):
                if self._handles.get(batch_id) is handle:
                    del self._handles[batch_id]
                    self.forgotten_closed += 1

        try:
            await asyncio.gather(*(check(b, h) for b, h in list(self._handles.items())))
        finally:
            self._check_at = max(self.limit, len(self._handles) + self.limit // 2)
            self._checking = None
