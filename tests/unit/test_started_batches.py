"""Submissions in flight (reactor/api/started.py): what `kill()` waits for
before it takes the list of started batches."""

from __future__ import annotations

import asyncio

import pytest

from reactor.api.started import StartedBatches


async def test_settled_returns_at_once_with_nothing_in_flight() -> None:
    batches = StartedBatches()
    await asyncio.wait_for(batches.settled(), 1)
    assert batches.in_flight == 0


async def test_settled_waits_for_every_submission_in_flight() -> None:
    batches = StartedBatches()
    first, second = batches.submitting(), batches.submitting()
    first.__enter__()
    second.__enter__()
    waiting = asyncio.ensure_future(batches.settled())
    await asyncio.sleep(0)
    first.__exit__(None, None, None)
    await asyncio.sleep(0)
    assert not waiting.done() and batches.in_flight == 1
    second.__exit__(None, None, None)
    await asyncio.wait_for(waiting, 1)


async def test_a_failed_submission_is_settled_too() -> None:
    batches = StartedBatches()
    waiting: asyncio.Future[None] | None = None
    with pytest.raises(RuntimeError), batches.submitting():
        waiting = asyncio.ensure_future(batches.settled())
        await asyncio.sleep(0)
        assert not waiting.done()
        raise RuntimeError("the start failed")
    assert waiting is not None
    await asyncio.wait_for(waiting, 1)
    assert batches.in_flight == 0
