"""Eager workflow start: a reactor whose module runs a worker on the same
client and task queue asks Temporal to hand each batch's first workflow task
straight to that worker, and Temporal records that it did
(`eager_execution_accepted` on the start event). Without such a worker the
reactor does not ask, and workers elsewhere take its batches from the task
queue as they always did. `reactor serve` runs its worker that way, so its
submissions start eagerly."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
from temporalio.api.enums.v1 import EventType

from reactor.api.builder import ReactorBuilder
from reactor.api.http.server import serve_reactor
from reactor.api.module import ReactorModule
from reactor.api.reactor import Reactor
from reactor.domain.jobs import JobStatus, parse_job_id, workflow_id_for
from reactor.models import BUILTIN_MODELS
from reactor.runtime.settings import Settings
from tests.conftest import Stack
from tests.support.http_api import add, create

Factory = Callable[..., Awaitable[ReactorModule]]


async def started_eagerly(reactor: Reactor, batch_id: str) -> bool:
    """What Temporal recorded at the start of the batch's workflow."""
    handle = reactor.client.get_workflow_handle(workflow_id_for(batch_id))
    async for event in handle.fetch_history_events():
        assert event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
        return event.workflow_execution_started_event_attributes.eager_execution_accepted
    raise AssertionError(f"batch {batch_id} has no history")


async def run_batch(reactor: Reactor, doc: str) -> str:
    """A batch creating `doc` and adding to it, run to READ_READY."""
    result = await reactor.execute_batch(
        {
            "jobs": [
                create(doc),
                {
                    "key": "add",
                    "document_id": doc,
                    "actions": [add("1")],
                    "depends_on": [f"create-{doc}"],
                },
            ]
        }
    )
    jobs = await reactor.wait_for_batch(result.batch_id)
    assert [j.status for j in jobs] == [JobStatus.READ_READY] * 2, jobs
    return result.batch_id


async def test_a_worker_of_the_reactors_own_module_takes_its_batches_eagerly(
    module_factory: Factory,
) -> None:
    module = await module_factory()
    assert module.reactor.eager_start
    for doc in ("eager-1", "eager-2"):
        assert await started_eagerly(module.reactor, await run_batch(module.reactor, doc))
    doc = await module.reactor.get("eager-2")
    assert [i["id"] for i in doc.state["global"]["items"]] == ["1"]


async def test_eager_start_turned_off_in_the_builder_is_not_asked_for(
    module_factory: Factory,
) -> None:
    # The same worker on the same client would take an eager task if asked.
    module = await module_factory(lambda b: b.with_eager_start(False))
    assert not module.reactor.eager_start
    assert not await started_eagerly(module.reactor, await run_batch(module.reactor, "lazy-1"))


async def test_without_a_worker_in_process_batches_go_through_the_task_queue(
    module_factory: Factory, worker: None
) -> None:
    # `worker`: a module of its own, on its own client: a worker on another host.
    module = await module_factory(worker=False)
    assert not module.reactor.eager_start
    batch_id = await run_batch(module.reactor, "remote-1")
    assert not await started_eagerly(module.reactor, batch_id)


async def test_a_worker_on_another_task_queue_leaves_eager_start_off(
    module_factory: Factory, worker: None
) -> None:
    module = await module_factory(worker=False)
    async with module.create_worker(task_queue=module.reactor.config.task_queue + "-other"):
        assert not module.reactor.eager_start
        batch_id = await run_batch(module.reactor, "other-queue-1")
    assert not await started_eagerly(module.reactor, batch_id)


async def test_a_reactor_asked_to_start_eagerly_without_a_worker_here_still_runs_its_batches(
    module_factory: Factory, worker: None
) -> None:
    # Eager start is a request: with no worker on this client to take the
    # task, the SDK starts the workflow the usual way and `worker` runs it.
    module = await module_factory(lambda b: b.with_eager_start(True), worker=False)
    assert module.reactor.eager_start
    batch_id = await run_batch(module.reactor, "asked-1")
    assert not await started_eagerly(module.reactor, batch_id)


async def test_reactor_serve_starts_the_batches_it_is_sent_eagerly(
    stack: Stack, database_url: str, task_queue: str
) -> None:
    settings = Settings(
        database_url=database_url, temporal_address=stack.temporal_address, task_queue=task_queue
    )
    lines: list[str] = []
    stop = asyncio.Event()
    serving = asyncio.create_task(serve_reactor(settings, port=0, ready=lines.append, stop=stop))
    try:
        while not lines:
            assert not serving.done(), serving.exception()
            await asyncio.sleep(0.05)
        url = lines[0].split("api=", 1)[1].split()[0]
        async with httpx.AsyncClient(base_url=url, timeout=60) as api:
            created = await api.post(
                "/v1/batches", params={"wait": "true"}, json={"jobs": [create("served-1")]}
            )
            assert created.status_code == 200, created.text
            executed = await api.post(
                "/v1/documents/served-1/actions",
                params={"wait": "true"},
                json={"actions": [add("1")]},
            )
            assert executed.status_code == 200, executed.text
            assert executed.json()["status"] == "READ_READY"
        batches = [created.json()["batch_id"], parse_job_id(executed.json()["id"])[0]]
    finally:
        stop.set()
        await serving
    # A reactor on the same stack, built apart, reads what Temporal recorded.
    reader = await (
        ReactorBuilder()
        .with_document_models(BUILTIN_MODELS)
        .with_database(database_url)
        .with_temporal(stack.temporal_address, task_queue=task_queue)
        .with_notifications(False)
        .build()
    )
    try:
        assert [await started_eagerly(reader, b) for b in batches] == [True, True]
    finally:
        await reader.close()
