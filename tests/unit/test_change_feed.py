"""The change feed's hand-over and bounds, over an in-memory log: a reader
catching up joins the shared tail without a gap or a duplicate, a full
queue overflows that reader only, filters skip without stalling, and the
event ids of the HTTP stream round-trip."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from reactor.api.http.errors import ApiError
from reactor.api.http.routes_events import event_id, parse_event_id
from reactor.application.change_feed import ChangeFeed, FeedClosed, FeedEvent, Overflowed
from reactor.application.subscriptions import SearchFilter
from reactor.application.wakeup import Wakeup
from reactor.domain.actions import Action
from reactor.domain.document import Operation
from reactor.domain.errors import ReactorError
from reactor.runtime.settings import api_events_max_queued_from_env
from reactor.storage.database import Database
from reactor.storage.operation_store import Position


def op(n: int, doc: str = "d") -> tuple[Position, Operation]:
    operation = Operation(
        id=f"op{n}",
        index=n,
        timestamp=datetime(2026, 1, 1, tzinfo=UTC),
        hash=f"h{n}",
        action=Action(type="ADD"),
        document_id=doc,
        scope="global",
        branch="main",
    )
    return Position(100 + n // 3, n), operation


class MemoryLog:
    """OperationIndex's reads over a list; DocumentView's types."""

    def __init__(self, rows: list[tuple[Position, Operation]]):
        self.rows = rows
        self.reads = 0

    async def read(self, after: Position, limit: int = 500) -> list[tuple[Position, Operation]]:
        self.reads += 1
        return [r for r in self.rows if r[0] > after][:limit]

    async def head(self) -> Position:
        return self.rows[-1][0] if self.rows else Position()

    async def existing(self, ids: list[str]) -> dict[str, tuple[str, bool]]:
        return {i: ("T", False) for i in ids}


def feed_over(log: MemoryLog, **options: Any) -> ChangeFeed:
    feed = ChangeFeed(cast(Database, None), Wakeup(), poll_interval=0.01, **options)
    feed.index = log  # type: ignore[assignment]
    feed.view = log  # type: ignore[assignment]
    return feed


def event(n: int, doc: str = "d") -> FeedEvent:
    position, operation = op(n, doc)
    return FeedEvent(position, operation, "T")


async def test_a_reader_catching_up_joins_the_tail_without_gap_or_duplicate() -> None:
    log = MemoryLog([op(n) for n in range(10)])
    feed = feed_over(log, page_size=6, max_queued=100)
    async with feed.open(lambda _: True) as tail_reader:
        assert tail_reader.position == op(9)[0]  # "now" is the head
        async with feed.open(lambda _: True, after=op(1)[0]) as late:
            await tail_reader.next(0)  # joins: the tail runs from the head
            got: list[int] = []
            log.rows += [op(n) for n in range(10, 20)]
            feed.wakeup.set()
            while len(got) < 18:
                got += [e.operation.index for e in await late.next(1.0)]
            assert got == list(range(2, 20))
            assert late.live
    assert feed.readers == 0
    await feed.close()


async def test_a_lone_reader_reads_its_backlog_in_pages_before_a_tail_starts() -> None:
    log = MemoryLog([op(n) for n in range(10)])
    feed = feed_over(log, page_size=3, max_queued=100)
    async with feed.open(lambda _: True, after=op(1)[0]) as reader:
        pages = [await reader.next(0) for _ in range(3)]
        assert [[e.operation.index for e in page] for page in pages] == [
            [2, 3, 4],
            [5, 6, 7],
            [8, 9],
        ]
        assert not reader.live and feed._tail is None  # paced by the reader alone
        assert await reader.next(0) == []
        assert reader.live and feed._tail is not None
    await feed.close()


async def test_a_full_queue_overflows_that_reader_only() -> None:
    feed = feed_over(MemoryLog([]), max_queued=2)
    async with feed.open(lambda _: True, after=Position()) as slow:
        async with feed.open(lambda _: True, after=Position()) as fast:
            for reader in (slow, fast):
                feed._join(reader)
            for n in range(3):
                slow._offer(event(n), feed.max_queued)
                fast._offer(event(n), feed.max_queued)
                if n == 1:
                    assert [e.operation.index for e in await fast.next(0)] == [0, 1]
            assert slow.overflowed and not slow.queue and not slow.live
            assert slow.ended.is_set()
            assert feed.overflows == 1
            with pytest.raises(Overflowed):
                await slow.next(0)
            assert [e.operation.index for e in await fast.next(0)] == [2]
    await feed.close()


async def test_a_filtered_reader_skips_without_queueing_and_ends_with_the_feed() -> None:
    feed = feed_over(MemoryLog([]), max_queued=1)
    async with feed.open(lambda e: e.operation.document_id == "b", after=Position()) as reader:
        feed._join(reader)
        for n in range(5):
            reader._offer(event(n, "a"), feed.max_queued)
        reader._offer(event(5, "b"), feed.max_queued)
        assert reader.position == event(5).position
        assert [e.operation.index for e in await reader.next(0)] == [5]
        await feed.close()
        with pytest.raises(FeedClosed):
            await reader.next(0)


async def test_an_idle_reader_gets_an_empty_batch_on_timeout() -> None:
    feed = feed_over(MemoryLog([op(0)]))
    async with feed.open(lambda _: True) as reader:
        assert await reader.next(0) == []  # joins
        assert await asyncio.wait_for(reader.next(0.01), 5) == []
    await feed.close()


def test_event_ids_round_trip_and_bad_ones_name_the_field() -> None:
    assert parse_event_id(event_id(Position(7342, 1187)), "x") == Position(7342, 1187)
    for bad in ("", "7", "7.", ".7", "a.b", "1.2.3", "-1.2", f"{2**63}.1", "\u0663.1"):
        with pytest.raises(ApiError) as caught:
            parse_event_id(bad, "Last-Event-ID")
        assert caught.value.status == 400 and caught.value.detail.field == "Last-Event-ID"


def test_search_filters_match_by_type_id_and_parent() -> None:
    assert SearchFilter(type="T").matches("a", "T", [])
    assert not SearchFilter(type="T").matches("a", "U", [])
    assert SearchFilter(ids=["a", "b"]).matches("b", "T", [])
    assert not SearchFilter(ids=["a"]).matches("b", "T", [])
    assert SearchFilter(parent_id="p").matches("c", "T", ["p"])
    assert SearchFilter(parent_id="p").matches("p", "T", [])  # the parent's own changes
    assert not SearchFilter(parent_id="p").matches("c", "T", ["q"])
    assert not SearchFilter(type="T", parent_id="p").matches("c", "U", ["p"])


def test_the_queue_bound_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REACTOR_API_EVENTS_MAX_QUEUED", raising=False)
    assert api_events_max_queued_from_env() is None
    monkeypatch.setenv("REACTOR_API_EVENTS_MAX_QUEUED", "250")
    assert api_events_max_queued_from_env() == 250
    for bad in ("0", "-3", "many"):
        monkeypatch.setenv("REACTOR_API_EVENTS_MAX_QUEUED", bad)
        with pytest.raises(ReactorError, match="REACTOR_API_EVENTS_MAX_QUEUED"):
            api_events_max_queued_from_env()
