"""The batch workflows' results, as this process waits for them.

One long poll per batch, however many callers wait on it: `wait_for_batch`
callers, and every `wait_for_job` on one of its jobs, each racing its job's
read-ready announcement against the batch's result.

A racer must not cost the shared poll anything when it leaves. An
`asyncio.shield` of the poll per racer did: cancelling one removes its
callback from the poll's list, a scan of every other racer's, so N jobs of
one batch answered by their announcements cost O(N²) (1.4 s of CPU for a
10,000-job batch, against 6 ms for 500). Racers here sit in a set per
batch, and the poll wakes them all with one callback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from reactor.domain.workflow_io import BatchSummary

T = TypeVar("T")

Poll = Callable[[str], Awaitable[BatchSummary]]


@dataclass(eq=False)
class _Poll:
    result: asyncio.Future[BatchSummary]
    racers: set[asyncio.Future[None]] = field(default_factory=set)


class BatchResults:
    def __init__(self, poll: Poll, on_closed: Callable[[str], None] = lambda _: None):
        # The batch's result from Temporal (a handle's `result()`).
        self.poll = poll
        # Called once the result (or its error) is in: the handle may go.
        self.on_closed = on_closed
        self._polls: dict[str, _Poll] = {}

    def __len__(self) -> int:
        return len(self._polls)

    def wait(self, batch_id: str) -> asyncio.Future[BatchSummary]:
        """The batch's result; cancelling the returned future leaves the poll
        running for the others."""
        return asyncio.shield(self._shared(batch_id).result)

    async def race(self, batch_id: str, other: asyncio.Future[T]) -> T | BatchSummary:
        """`other`'s result if it completes first, else the batch's result
        (or its error). A cancelled `other` is no answer: the batch gives it.
        `other` is left as it is: its owner discards it."""
        poll = self._shared(batch_id)
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake(done: asyncio.Future[T]) -> None:
            if not done.cancelled() and not woken.done():
                woken.set_result(None)

        other.add_done_callback(wake)
        poll.racers.add(woken)
        try:
            await woken
        finally:
            other.remove_done_callback(wake)
            poll.racers.discard(woken)
        if other.done() and not other.cancelled():
            return other.result()
        return poll.result.result()

    def _shared(self, batch_id: str) -> _Poll:
        poll = self._polls.get(batch_id)
        # A cancelled poll (close()) is no answer: the next caller polls again.
        if poll is None or poll.result.cancelled():
            poll = self._polls[batch_id] = _Poll(asyncio.ensure_future(self.poll(batch_id)))
            poll.result.add_done_callback(partial(self._closed, batch_id, poll))
        return poll

    def _closed(self, batch_id: str, poll: _Poll, result: asyncio.Future[BatchSummary]) -> None:
        if self._polls.get(batch_id) is poll:
            del self._polls[batch_id]
        self.on_closed(batch_id)
        if not result.cancelled():
            result.exception()  # retrieved: racers read it through result()
        for woken in poll.racers:
            if not woken.done():
                woken.set_result(None)

    async def close(self) -> None:
        """Cancels every poll; their waiters see the cancellation."""
        results = [p.result for p in self._polls.values()]
        for r in results:
            r.cancel()
        await asyncio.gather(*results, return_exceptions=True)
