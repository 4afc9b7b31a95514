"""The global log, read once per process and fanned out to many readers.

Readers (the HTTP event stream's clients and the reactor's subscriptions,
all on the one feed a reactor owns) each start at a position: one in
the past replays its backlog from the database in pages, paced by its own
consumption, until it reaches the shared tail and joins it; one at "now"
joins at once. The tail reads in visible order (`OperationIndex`), so every
reader sees the same sequence, and a reader that joins with a position past
the tail's skips what it already has: no gaps, no duplicates.

Each live reader has a bounded queue (its own bound, or the feed's). The tail
never waits for a reader: one whose queue is full is dropped from the
fan-out, its queue freed, and told it overflowed (it reconnects from its
last delivered position).

The tail is woken by the process's commit `Wakeup` (NOTIFYs from any
process) and polls as the safety net; it runs only while readers are live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from reactor.application.wakeup import Wakeup
from reactor.domain.document import Operation
from reactor.storage.database import Database
from reactor.storage.document_view import DocumentView
from reactor.storage.operation_index import OperationIndex
from reactor.storage.operation_store import Position

log = logging.getLogger("reactor.subscriptions")  # an outage is one line (OUTAGE_LOGGERS)

# The parents of a set of documents, for filters by parent.
PARENTS_OF = (
    "SELECT child_id, parent_id FROM reactor_relationships WHERE child_id = ANY($1::text[])"
)

MAX_QUEUED = 1000  # events a live reader may have waiting before it overflows
PAGE_SIZE = 500  # operations read per database round trip
POLL_INTERVAL_S = 0.5  # the tail's safety net when no NOTIFY wakes it


@dataclass(frozen=True)
class FeedEvent:
    """One operation at its place in the global log. `parents` is read with
    the operation (when some reader filters by parent), not as of its write."""

    position: Position
    operation: Operation
    document_type: str
    parents: frozenset[str] = frozenset()


Match = Callable[[FeedEvent], bool]


class Overflowed(Exception):
    """The reader fell more than its queue's size behind the tail."""


class FeedClosed(Exception):
    """The feed was closed (the process is stopping)."""


@dataclass(eq=False)
class FeedReader:
    """One reader's place and queue. `next()` hands out what follows its
    position, in order; `position` is the last one handed out (or scanned
    past, when the filter left events out)."""

    feed: ChangeFeed
    match: Match
    position: Position
    needs_parents: bool = False
    max_queued: int = MAX_QUEUED
    # Operations per read: at most half the queue, so a reader that keeps
    # up holds at most one page of the tail and may lag another.
    page_size: int = PAGE_SIZE
    queue: deque[FeedEvent] = field(default_factory=deque)
    live: bool = False
    overflowed: bool = False
    closed: bool = False
    # Set when something is queued, or the reader overflowed or was closed.
    signal: asyncio.Event = field(default_factory=asyncio.Event)
    # Set only when the reader overflowed or was closed: a writer blocked on
    # this reader's slow client may give up on it.
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def next(self, timeout: float) -> list[FeedEvent]:
        """The next events, in order; [] when none came within `timeout`
        (or a backlog page had none that match). Raises Overflowed or
        FeedClosed once, at the point where the reader stops."""
        if self.overflowed:
            raise Overflowed
        if self.closed:
            raise FeedClosed
        if not self.live:
            return await self.feed._catch_up(self)
        if not self.queue:
            self.signal.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.signal.wait(), timeout)
        if self.overflowed:
            raise Overflowed
        if self.closed:
            raise FeedClosed
        events = list(self.queue)
        self.queue.clear()
        return events

    def _offer(self, event: FeedEvent, limit: int) -> None:
        if event.position <= self.position:
            return  # read already while catching up
        self.position = event.position
        if not self.match(event):
            return
        if len(self.queue) >= limit:
            self.feed._drop(self)
            self.feed.overflows += 1
            self.queue.clear()
            self.overflowed = True
            self.ended.set()
        else:
            self.queue.append(event)
        self.signal.set()

    def _close(self) -> None:
        self.closed = True
        self.queue.clear()
        self.signal.set()
        self.ended.set()


class ChangeFeed:
    def __init__(
        self,
        db: Database,
        wakeup: Wakeup,
        *,
        max_queued: int = MAX_QUEUED,
        page_size: int = PAGE_SIZE,
        poll_interval: float = POLL_INTERVAL_S,
    ):
        if max_queued < 1 or page_size < 1:
            raise ValueError("max_queued and page_size must be at least 1")
        self.db = db
        self.index = OperationIndex(db)
        self.view = DocumentView(db)
        self.wakeup = wakeup
        self.max_queued = max_queued
        self.page_size = page_size
        self.poll_interval = poll_interval
        self._readers: set[FeedReader] = set()  # every open reader
        self._live: set[FeedReader] = set()
        self._tail: asyncio.Task[None] | None = None
        self._position = Position()  # the tail's; meaningful while it runs
        self._closed = False
        self.overflows = 0  # readers dropped for falling behind, since the start

    @property
    def readers(self) -> int:
        """Open readers, live or catching up."""
        return len(self._readers)

    async def head(self) -> Position:
        """ "Now": the last operation of the log that readers may see."""
        return await self.index.head()

    async def check(self, after: Position) -> None:
        """A position past the log's head names no event of this log:
        ValueError (a reader there would hold the shared tail back for
        everyone)."""
        if after > await self.index.head():
            raise ValueError("the position is past the end of the log")

    @contextlib.asynccontextmanager
    async def open(
        self,
        match: Match,
        *,
        after: Position | None = None,
        needs_parents: bool = False,
        max_queued: int | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[FeedReader]:
        """A reader of what follows `after` (None: from now on); `check`
        it first when it comes from outside. `max_queued` and `page_size`
        default to the feed's."""
        limit = self.max_queued if max_queued is None else max_queued
        page = self.page_size if page_size is None else page_size
        if limit < 1 or page < 1:
            raise ValueError("max_queued and page_size must be at least 1")
        start = await self.head() if after is None else after
        reader = FeedReader(self, match, start, needs_parents, limit, min(page, max(1, limit // 2)))
        if self._closed:
            reader._close()
        self._readers.add(reader)
        try:
            yield reader
        finally:
            self._readers.discard(reader)
            self._drop(reader)

    def end(self, reader: FeedReader) -> None:
        """Ends one reader: its `next()` raises FeedClosed."""
        self._drop(reader)
        reader._close()

    async def close(self) -> None:
        """Ends every reader (each `next()` raises FeedClosed) and the tail."""
        self._closed = True
        for reader in list(self._readers):
            reader._close()
        self._live.clear()
        tail, self._tail = self._tail, None
        if tail is not None:
            tail.cancel()
            await asyncio.gather(tail, return_exceptions=True)

    def _drop(self, reader: FeedReader) -> None:
        self._live.discard(reader)
        reader.live = False

    async def _catch_up(self, reader: FeedReader) -> list[FeedEvent]:
        """One backlog page for `reader`, or its joining the tail once it
        has read up to the tail's position (or, with no tail running, the
        log's head: a tail started further back would feed one reader its
        backlog faster than it may read it)."""
        if self._tail is None:
            head = await self.index.head()
            if self._tail is None and reader.position >= head:
                self._position = reader.position
                self._join(reader)
                self._tail = asyncio.create_task(self._run(), name="reactor-change-feed")
                return []
        elif reader.position >= self._position:
            self._join(reader)
            return []
        rows = await self.index.read(reader.position, reader.page_size)
        events = await self._events(rows, reader.needs_parents)
        out = [e for e in events if e.position > reader.position and reader.match(e)]
        if events and not reader.closed:
            reader.position = max(reader.position, events[-1].position)
        return out

    def _join(self, reader: FeedReader) -> None:
        reader.live = True
        self._live.add(reader)

    async def _run(self) -> None:
        try:
            while self._live:
                seen = self.wakeup.generation
                try:
                    await self._drain()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("change feed tail failed; retrying")
                if self.wakeup.generation == seen and self._live:
                    await self.wakeup.wait(self.poll_interval)
        finally:
            if self._tail is asyncio.current_task():
                self._tail = None

    async def _drain(self) -> None:
        while self._live:
            # The smallest live reader's page: each holds at most one of them.
            page = min(r.page_size for r in self._live)
            rows = await self.index.read(self._position, page)
            if not rows:
                return
            parents = any(r.needs_parents for r in self._live)
            events = await self._events(rows, parents)
            self._position = rows[-1][0]
            for event in events:
                for reader in list(self._live):
                    reader._offer(event, reader.max_queued)
            if len(rows) < page:
                return

    async def _events(
        self, rows: list[tuple[Position, Operation]], with_parents: bool
    ) -> list[FeedEvent]:
        if not rows:
            return []
        ids = sorted({op.document_id for _, op in rows})
        types = await self.view.existing(ids)
        parents: dict[str, set[str]] = defaultdict(set)
        if with_parents:
            async with self.db.pool.acquire() as conn:
                for r in await conn.fetch(PARENTS_OF, ids):
                    parents[r["child_id"]].add(r["parent_id"])
        return [
            FeedEvent(
                position,
                op,
                types.get(op.document_id, ("", False))[0],
                frozenset(parents.get(op.document_id, ())),
            )
            for position, op in rows
        ]
