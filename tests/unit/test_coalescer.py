"""Coalescing of concurrent execute() calls (pure: a fake submit)."""

from __future__ import annotations

import asyncio

from reactor.api.coalescer import ExecuteCoalescer
from reactor.domain.batch import BatchRequest, JobRequest
from reactor.domain.errors import ValidationError
from reactor.domain.jobs import JobInfo


def job(doc: str) -> JobRequest:
    return JobRequest(key="job", document_id=doc, actions=[{"type": "X"}])  # type: ignore[list-item]


class FakeSubmit:
    def __init__(self, reject: set[str] | None = None, delay: float = 0.01):
        self.requests: list[BatchRequest] = []
        self.reject = reject or set()
        self.delay = delay

    async def __call__(self, request: BatchRequest) -> dict[str, JobInfo]:
        self.requests.append(request)
        await asyncio.sleep(self.delay)
        docs = [j.document_id for j in request.jobs]
        if self.reject & set(docs):
            raise ValidationError("rejected", job=request.jobs[0].key)
        return {
            j.key: JobInfo(
                id=f"b{len(self.requests)}:{i}", key=j.key, batch_id="b", document_id=j.document_id
            )
            for i, j in enumerate(request.jobs)
        }


async def test_a_lone_call_is_submitted_at_once_alone() -> None:
    submit = FakeSubmit()
    info = await ExecuteCoalescer(submit).execute(job("a"))
    assert info.document_id == "a"
    assert [len(r.jobs) for r in submit.requests] == [1]


async def test_concurrent_calls_share_batches_in_arrival_order() -> None:
    submit = FakeSubmit()
    coalescer = ExecuteCoalescer(submit, max_jobs=40)
    infos = await asyncio.gather(*(coalescer.execute(job(f"d{i}")) for i in range(100)))
    assert [i.document_id for i in infos] == [f"d{i}" for i in range(100)]
    # one burst in one loop tick: grouped from the first submission on
    assert [len(r.jobs) for r in submit.requests] == [40, 40, 20]
    assert [j.document_id for j in submit.requests[1].jobs] == [f"d{i}" for i in range(40, 80)]


async def test_calls_arriving_during_a_submission_form_the_next_batch() -> None:
    submit = FakeSubmit(delay=0.05)
    coalescer = ExecuteCoalescer(submit)
    first = asyncio.create_task(coalescer.execute(job("lead")))
    await asyncio.sleep(0.01)  # the lead call is in flight now
    rest = await asyncio.gather(*(coalescer.execute(job(f"d{i}")) for i in range(5)))
    await first
    assert [len(r.jobs) for r in submit.requests] == [1, 5]
    assert [r.document_id for r in rest] == [f"d{i}" for i in range(5)]


async def test_an_invalid_call_is_rejected_alone() -> None:
    submit = FakeSubmit(reject={"bad"})
    coalescer = ExecuteCoalescer(submit)
    results = await asyncio.gather(
        coalescer.execute(job("first")),
        *(coalescer.execute(job(d)) for d in ("ok-1", "bad", "ok-2")),
        return_exceptions=True,
    )
    assert isinstance(results[2], ValidationError)
    assert [r.document_id for r in results if isinstance(r, JobInfo)] == ["first", "ok-1", "ok-2"]
