"""Resubmitting a batch under its batch_id: the same request is a no-op
(nothing applied twice, the same job ids and outcomes), a different one is
rejected naming batch_id, whether the batch traveled inline in the workflow
input (small batches) or was stored by reference (large ones)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from reactor.api.module import ReactorModule
from reactor.api.reactor import Reactor
from reactor.api.submission import INLINE_JOBS_LIMIT
from reactor.domain.errors import ValidationError
from reactor.domain.jobs import JobStatus

with_worker = pytest.mark.usefixtures("worker")


def request(
    batch_id: str, doc: str, jobs: int, text: str, *, creating: bool = False
) -> dict[str, Any]:
    """`jobs` jobs of one action on `doc`; `creating`: the first creates it."""
    specs = [
        {
            "key": f"j{i}",
            "document_id": doc,
            "actions": [{"type": "ADD_TODO_ITEM", "input": {"id": f"i{i}", "text": text}}],
        }
        for i in range(jobs)
    ]
    if creating:
        specs[0] = CREATE | {"document_id": doc}
    return {"batch_id": batch_id, "jobs": specs}


CREATE: dict[str, Any] = {
    "key": "c",
    "scope": "document",
    "actions": [{"type": "CREATE_DOCUMENT", "input": {"document_type": "powerhouse/todo-list"}}],
}


async def create(reactor: Reactor, doc: str) -> None:
    result = await reactor.execute_batch({"jobs": [CREATE | {"document_id": doc}]})
    await reactor.wait_for_batch(result.batch_id)


@with_worker
@pytest.mark.parametrize("jobs", [1, INLINE_JOBS_LIMIT + 5], ids=["inline", "stored"])
async def test_the_same_request_again_is_a_no_op(reactor: Reactor, jobs: int) -> None:
    doc = f"resubmit-same-{jobs}"
    await create(reactor, doc)
    first = await reactor.execute_batch(request(f"same-{jobs}", doc, jobs, "milk"))
    infos = await reactor.wait_for_batch(first.batch_id)
    again = await reactor.execute_batch(request(f"same-{jobs}", doc, jobs, "milk"))
    assert again.batch_id == first.batch_id
    assert {k: j.id for k, j in again.jobs.items()} == {k: j.id for k, j in first.jobs.items()}
    infos_again = await reactor.wait_for_batch(again.batch_id)
    assert [(i.key, i.status) for i in infos_again] == [(i.key, i.status) for i in infos]
    assert all(i.status is JobStatus.READ_READY for i in infos_again)
    document = await reactor.get(doc)
    assert document.header.revision["global"] == jobs  # applied once


@with_worker
@pytest.mark.parametrize("finished", [True, False], ids=["after-it-completed", "while-it-runs"])
@pytest.mark.parametrize("jobs", [1, INLINE_JOBS_LIMIT + 5], ids=["inline", "stored"])
async def test_a_different_request_under_a_used_batch_id_is_rejected(
    reactor: Reactor, jobs: int, finished: bool
) -> None:
    doc = f"resubmit-other-{jobs}-{finished}"
    batch = f"other-{jobs}-{finished}"
    await create(reactor, doc)
    first = await reactor.execute_batch(request(batch, doc, jobs, "milk"))
    if finished:
        await reactor.wait_for_batch(first.batch_id)
    with pytest.raises(ValidationError) as info:
        await reactor.execute_batch(request(batch, doc, jobs, "eggs"))
    assert info.value.field == "batch_id"
    assert "different request" in str(info.value)
    await reactor.wait_for_batch(first.batch_id)
    document = await reactor.get(doc)
    assert [i["text"] for i in document.state["global"]["items"]] == ["milk"] * jobs


@pytest.mark.parametrize("jobs", [1, INLINE_JOBS_LIMIT + 5], ids=["inline", "stored"])
async def test_a_terminated_batch_runs_again_when_the_same_request_comes_back(
    module_factory: Callable[..., Awaitable[ReactorModule]], jobs: int
) -> None:
    """Its workflow was terminated before any worker picked it up (an
    operator in the Temporal UI): the same request starts it again and it
    completes, each job applied once; a different request is still refused."""
    submitter = (await module_factory(worker=False)).reactor
    doc = f"resubmit-terminated-{jobs}"
    batch = f"terminated-{jobs}"
    first = await submitter.execute_batch(request(batch, doc, jobs + 1, "milk", creating=True))
    await submitter.client.get_workflow_handle(f"batch-{first.batch_id}").terminate("operator")
    reactor = (await module_factory()).reactor  # now a worker runs
    with pytest.raises(ValidationError):
        await reactor.execute_batch(request(batch, doc, jobs + 1, "eggs", creating=True))
    again = await reactor.execute_batch(request(batch, doc, jobs + 1, "milk", creating=True))
    infos = await reactor.wait_for_batch(again.batch_id)
    assert all(i.status is JobStatus.READ_READY for i in infos)
    document = await reactor.get(doc)
    assert [i["text"] for i in document.state["global"]["items"]] == ["milk"] * jobs
