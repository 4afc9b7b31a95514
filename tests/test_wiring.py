"""The builder opens every store and component once: the reactor, the
module, and the workers it creates share them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from reactor.api.module import ReactorModule

Factory = Callable[..., Awaitable[ReactorModule]]


async def test_the_reactor_and_its_module_share_one_set_of_stores(module_factory: Factory) -> None:
    module = await module_factory(worker=False)
    reactor = module.reactor
    assert reactor.db is module.database
    assert reactor.operation_store is module.operation_store
    assert reactor.document_view is module.document_view
    assert reactor.relationships is module.document_indexer
    assert reactor.ledger is module.stores.ledger
    assert reactor.job_tracker is module.job_tracker
    assert reactor.event_bus is module.event_bus
    assert reactor.registry is module.registry
    # The module's listener feeds the reactor's read-ready notices and the
    # operation store's notify hook alike: one LISTEN connection.
    assert module.listener is not None and reactor.ready_notices.listening
    assert module.operation_store.instance_id == module.listener.instance_id


async def test_a_worker_writes_through_the_modules_stores(module_factory: Factory) -> None:
    module = await module_factory()
    job = await module.reactor.create("powerhouse/todo-list", document_id="wired")
    done = await module.reactor.wait_for_job(job.id, timeout=60)
    assert done.status.value == "READ_READY"
    assert (await module.document_view.get("wired")) is not None
    assert await module.operation_store.get_revisions("wired") == {"document": 1}
