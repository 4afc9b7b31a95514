"""Waiting for batch workflows' results (pure: a fake poll instead of
Temporal's long poll)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reactor.api.batch_results import BatchResults
from reactor.domain.workflow_io import BatchSummary


def summary(batch_id: str) -> BatchSummary:
    return BatchSummary(batch_id=batch_id, total=1, counts={}, failed=0, finished=True)


class CountingFuture(asyncio.Future[BatchSummary]):
    """Counts who registers on it and who leaves."""

    added = 0
    removed = 0

    def add_done_callback(self, fn: Any, *, context: Any = None) -> None:
        type(self).added += 1
        super().add_done_callback(fn, context=context)

    def remove_done_callback(self, fn: Any) -> int:
        type(self).removed += 1
        return super().remove_done_callback(fn)


class FakePoll:
    """One future per call, completed by the test."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.futures: dict[str, asyncio.Future[BatchSummary]] = {}

    def __call__(self, batch_id: str) -> asyncio.Future[BatchSummary]:
        self.calls.append(batch_id)
        future = self.futures[batch_id] = CountingFuture()
        return future


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_every_waiter_of_a_batch_shares_one_poll() -> None:
    poll = FakePoll()
    results = BatchResults(poll)
    waits = [results.wait("b1") for _ in range(3)]
    notices = [asyncio.get_running_loop().create_future() for _ in range(3)]
    races = [asyncio.ensure_future(results.race("b1", n)) for n in notices]
    await settle()
    assert poll.calls == ["b1"]
    poll.futures["b1"].set_result(summary("b1"))
    assert [s.batch_id for s in await asyncio.gather(*waits, *races)] == ["b1"] * 6


async def test_a_racer_is_answered_by_whichever_comes_first() -> None:
    poll = FakePoll()
    results = BatchResults(poll)
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    early = asyncio.ensure_future(results.race("b1", first))
    late = asyncio.ensure_future(results.race("b1", second))
    await settle()
    first.set_result("announced")
    assert await early == "announced"
    assert not late.done()
    poll.futures["b1"].set_result(summary("b1"))
    assert await late == summary("b1")


async def test_a_cancelled_announcement_leaves_the_answer_to_the_batch() -> None:
    poll = FakePoll()
    results = BatchResults(poll)
    notice = asyncio.get_running_loop().create_future()
    race = asyncio.ensure_future(results.race("b1", notice))
    await settle()
    notice.cancel()
    await settle()
    assert not race.done()
    poll.futures["b1"].set_result(summary("b1"))
    assert await race == summary("b1")


async def test_the_batch_error_reaches_every_racer() -> None:
    poll = FakePoll()
    results = BatchResults(poll)
    notices = [asyncio.get_running_loop().create_future() for _ in range(2)]
    races = [asyncio.ensure_future(results.race("b1", n)) for n in notices]
    await settle()
    poll.futures["b1"].set_exception(RuntimeError("workflow failed"))
    for race in races:
        with pytest.raises(RuntimeError, match="workflow failed"):
            await race


async def test_racers_answered_by_their_announcements_never_touch_the_shared_poll() -> None:
    """The shared poll gets one callback however many racers come and go;
    a shield per racer added one each and scanned them all on leaving."""
    poll = FakePoll()
    results = BatchResults(poll)
    CountingFuture.added = CountingFuture.removed = 0
    notices = [asyncio.get_running_loop().create_future() for _ in range(2000)]
    races = [asyncio.ensure_future(results.race("b1", n)) for n in notices]
    await settle()
    for i, n in enumerate(notices):
        n.set_result(i)
    assert await asyncio.gather(*races) == list(range(2000))
    assert (CountingFuture.added, CountingFuture.removed) == (1, 0)
    assert not poll.futures["b1"].done()  # still polling for later waiters


async def test_a_racer_that_gives_up_leaves_the_poll_to_the_others() -> None:
    poll = FakePoll()
    results = BatchResults(poll)
    loop = asyncio.get_running_loop()
    impatient = asyncio.ensure_future(results.race("b1", loop.create_future()))
    patient = asyncio.ensure_future(results.race("b1", loop.create_future()))
    await settle()
    impatient.cancel()
    await settle()
    poll.futures["b1"].set_result(summary("b1"))
    assert await patient == summary("b1")
    assert impatient.cancelled()


async def test_a_closed_batch_is_forgotten_and_polled_again_by_the_next_waiter() -> None:
    poll = FakePoll()
    closed: list[str] = []
    results = BatchResults(poll, on_closed=closed.append)
    wait = results.wait("b1")
    poll.futures["b1"].set_result(summary("b1"))
    await wait
    await settle()
    assert closed == ["b1"] and len(results) == 0
    again = results.wait("b1")
    assert poll.calls == ["b1", "b1"]
    poll.futures["b1"].set_result(summary("b1"))
    assert await again == summary("b1")


async def test_close_cancels_the_polls_and_their_waiters_see_it() -> None:
    poll = FakePoll()
    results = BatchResults(poll)
    race = asyncio.ensure_future(results.race("b1", asyncio.get_running_loop().create_future()))
    await settle()
    await results.close()
    with pytest.raises(asyncio.CancelledError):
        await race
    # A cancelled poll is no answer: the next waiter polls again.
    again = results.wait("b1")
    assert poll.calls == ["b1", "b1"]
    poll.futures["b1"].set_result(summary("b1"))
    assert await again == summary("b1")
