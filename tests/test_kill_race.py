"""`Reactor.kill()` and the submissions under way when it comes: each is
either refused or started, and a started one is awaited by `completed`."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus

from reactor.domain.errors import ShutdownError
from reactor.domain.jobs import JobStatus, workflow_id_for

CREATE = {
    "jobs": [
        {
            "key": "create",
            "document_id": "killed-while-starting",
            "scope": "document",
            "actions": [
                {"type": "CREATE_DOCUMENT", "input": {"document_type": "powerhouse/todo-list"}}
            ],
        }
    ]
}


async def test_kill_awaits_a_batch_whose_submission_had_begun(module_factory: Any) -> None:
    """kill() comes while the batch is being prepared (past the open check,
    holding the preparation lock): the batch still starts, and `completed`
    resolves only once its workflow has finished. No worker runs until
    then, so the workflow cannot finish before the test lets it."""
    module = await module_factory(worker=False)
    reactor = module.reactor
    submitting = asyncio.ensure_future(reactor.execute_batch(CREATE))
    while not reactor._preparing.locked():  # noqa: ASYNC110 - tick by tick, to stop it mid-way
        await asyncio.sleep(0)
    shutdown = reactor.kill()
    result = await submitting  # it had begun: it starts
    handle = reactor.client.get_workflow_handle(workflow_id_for(result.batch_id))
    assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
    assert not shutdown.completed.done()
    async with module.create_worker():
        await asyncio.wait_for(asyncio.shield(shutdown.completed), 60)
        assert (await handle.describe()).status is WorkflowExecutionStatus.COMPLETED
        [job] = await reactor.wait_for_batch(result.batch_id)
    assert job.status is JobStatus.READ_READY
    with pytest.raises(ShutdownError):
        await reactor.execute_batch(CREATE)


async def test_kill_refuses_a_submission_queued_behind_another(module_factory: Any) -> None:
    """A submission that passed the open check but still waits for the
    preparation lock is refused when kill() came meanwhile; `completed`
    waits for it to be refused, and nothing starts."""
    module = await module_factory(worker=False)
    reactor = module.reactor
    async with reactor._preparing:
        queued = asyncio.ensure_future(reactor.execute_batch(CREATE))
        while reactor._started.in_flight == 0:  # noqa: ASYNC110 - tick by tick
            await asyncio.sleep(0)
        shutdown = reactor.kill()
        await asyncio.sleep(0)
        assert not shutdown.completed.done()  # the queued submission is still under way
    with pytest.raises(ShutdownError):
        await queued
    await asyncio.wait_for(shutdown.completed, 30)
    assert len(reactor._started) == 0
