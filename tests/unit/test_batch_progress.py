"""The CLI's progress bar waits on the batch's result, never on its summary
query: a query is answered only by a polling worker, so one sent while the
worker restarts may wait long after the batch itself has ended."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest
from rich.console import Console

from reactor.cli import client
from reactor.domain.jobs import JobInfo, JobStatus
from reactor.domain.workflow_io import BatchSummary


class _Batch:
    """A batch whose summary queries never come back until `answer` is set;
    its result comes as soon as `end` is set."""

    def __init__(self) -> None:
        self.end = asyncio.Event()
        self.answer = asyncio.Event()
        self.queries = 0
        self.asked: asyncio.Queue[int] = asyncio.Queue()

    async def wait_for_batch(self, batch_id: str) -> list[JobInfo]:
        await self.end.wait()
        job = JobInfo(id=f"{batch_id}:0", key="k", batch_id=batch_id, document_id="d")
        return [job.model_copy(update={"status": JobStatus.READ_READY})]

    async def batch_summary(self, batch_id: str) -> BatchSummary:
        self.queries += 1
        self.asked.put_nowait(self.queries)
        await self.answer.wait()
        counts = {s.value: 0 for s in JobStatus}
        return BatchSummary(batch_id=batch_id, total=1, counts=counts, failed=0, finished=False)


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client, "err_console", Console(file=io.StringIO(), force_terminal=True))


async def test_the_result_is_returned_while_a_summary_query_hangs(terminal: None) -> None:
    batch = _Batch()
    waiting = asyncio.ensure_future(client.wait_with_progress(_as_reactor(batch), "b1", 1))
    await asyncio.wait_for(batch.asked.get(), 30)
    batch.end.set()
    jobs = await asyncio.wait_for(waiting, 30)
    assert [j.status for j in jobs] == [JobStatus.READ_READY]
    assert not batch.answer.is_set()


async def test_the_bar_keeps_querying_while_the_batch_runs(terminal: None) -> None:
    batch = _Batch()
    batch.answer.set()
    waiting = asyncio.ensure_future(client.wait_with_progress(_as_reactor(batch), "b2", 1))
    while await asyncio.wait_for(batch.asked.get(), 30) < 2:
        pass
    batch.end.set()
    assert len(await asyncio.wait_for(waiting, 30)) == 1


async def test_quiet_waits_without_querying() -> None:
    batch = _Batch()
    batch.end.set()
    jobs = await client.wait_with_progress(_as_reactor(batch), "b3", 1, quiet=True)
    assert len(jobs) == 1 and batch.queries == 0


def _as_reactor(batch: _Batch) -> Any:
    return batch
