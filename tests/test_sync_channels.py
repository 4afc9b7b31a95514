"""The channel store's contract, asserted once and run against both stores
(PostgreSQL in a fresh migrated database, and the in-memory one); channels
declared with the builder, stored when a worker of the module starts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from temporalio.client import WorkflowExecutionStatus

from reactor.api.builder import ReactorBuilder
from reactor.api.module import ReactorModule
from reactor.domain.errors import ValidationError
from reactor.storage.operation_store import Position
from reactor.storage.sync_channels import (
    Channel,
    ChannelStore,
    InMemoryChannelStore,
    PostgresChannelStore,
    default_name,
    workflow_id,
)

URL = "http://127.0.0.1:8081"
# Above 2**32: the xid8 columns must carry epoch-qualified transaction ids.
BIG_TX = 2**40 + 7


@pytest.fixture(params=["postgres", "memory"])
def store(request: pytest.FixtureRequest) -> ChannelStore:
    if request.param == "memory":
        return InMemoryChannelStore()
    return PostgresChannelStore(request.getfixturevalue("db"))


async def test_a_new_channel_starts_pending_at_the_start_of_both_logs(store: ChannelStore) -> None:
    added = await store.add(Channel.declare(URL, token="jwt", document_type="powerhouse/todo"))
    assert added.name == "127.0.0.1-8081"
    assert (added.url, added.token, added.document_type, added.document_id) == (
        URL,
        "jwt",
        "powerhouse/todo",
        None,
    )
    assert (added.pull, added.push, added.pulled, added.pushed) == (Position(), Position(), 0, 0)
    assert (added.status, added.attempts, added.last_error, added.remote_id) == (
        "PENDING",
        0,
        None,
        None,
    )
    assert added.created_at is not None and added.last_success_at is None
    assert added.filter == "type powerhouse/todo" and added.workflow_id == "sync-127.0.0.1-8081"
    assert await store.get(added.name) == added
    assert await store.get("nobody") is None


async def test_list_is_by_name_and_remove_says_whether_it_removed(store: ChannelStore) -> None:
    await store.add(Channel.declare("https://b.example", name="b"))
    await store.add(Channel.declare("http://a.example:9", name="a", document_id="doc-1"))
    assert [(c.name, c.filter) for c in await store.list()] == [
        ("a", "document doc-1"),
        ("b", "all"),
    ]
    assert await store.remove("a") is True
    assert await store.remove("a") is False
    assert [c.name for c in await store.list()] == ["b"]


async def test_a_taken_name_is_refused_naming_the_field(store: ChannelStore) -> None:
    await store.add(Channel.declare(URL, name="peer"))
    with pytest.raises(ValidationError) as caught:
        await store.add(Channel.declare("http://other:1", name="peer"))
    assert caught.value.field == "name" and "peer" in str(caught.value)
    kept = await store.get("peer")
    assert kept is not None and kept.url == URL


@pytest.mark.parametrize(
    ("channel", "field"),
    [
        (Channel(name="ok", url="ftp://host/x"), "url"),
        (Channel(name="ok", url="http://"), "url"),
        (Channel(name="ok", url="localhost:8080"), "url"),
        (Channel(name="ok", url="http://host:99999"), "url"),
        (Channel(name="-bad", url=URL), "name"),
        (Channel(name="a" * 65, url=URL), "name"),
        (Channel(name="sp ace", url=URL), "name"),
        (Channel(name="ok", url=URL, document_type="t", document_id="d"), "document_id"),
        (Channel(name="ok", url=URL, document_type=""), "document_type"),
        (Channel(name="ok", url=URL, token="a\x00b"), "token"),
    ],
)
async def test_bad_configuration_is_refused_naming_the_field(
    store: ChannelStore, channel: Channel, field: str
) -> None:
    for write in (store.add, store.configure):
        with pytest.raises(ValidationError) as caught:
            await write(channel)
        assert caught.value.field == field
    assert await store.list() == []


async def test_cursors_and_totals_advance_and_outcomes_are_kept(store: ChannelStore) -> None:
    name = (await store.add(Channel.declare(URL))).name
    assert await store.advance_pull(name, Position(BIG_TX, 12), 5, "remote-1") is True
    assert await store.advance_pull(name, Position(BIG_TX + 1, 13), 2, "remote-1") is True
    assert await store.advance_push(name, Position(40, 3), 4) is True
    got = await store.get(name)
    assert got is not None
    assert (got.pull, got.pulled, got.remote_id) == (Position(BIG_TX + 1, 13), 7, "remote-1")
    assert (got.push, got.pushed) == (Position(40, 3), 4)

    assert await store.failed(name, "remote down") == 1
    assert await store.failed(name, "x" * 5000) == 2
    got = await store.get(name)
    assert got is not None and got.status == "FAILED" and got.attempts == 2
    assert got.last_error is not None and 0 < len(got.last_error) <= 1000

    assert await store.succeeded(name) is True
    got = await store.get(name)
    assert got is not None
    assert (got.status, got.attempts, got.last_error) == ("SUCCEEDED", 0, None)
    assert got.last_success_at is not None
    assert got.pull == Position(BIG_TX + 1, 13)  # outcomes leave the cursors alone


async def test_state_writes_to_a_removed_channel_say_so(store: ChannelStore) -> None:
    assert await store.advance_pull("gone", Position(1, 1), 1, "r") is False
    assert await store.advance_push("gone", Position(1, 1), 1) is False
    assert await store.succeeded("gone") is False
    assert await store.failed("gone", "boom") == 0
    assert await store.list() == []


async def test_configure_adds_or_updates_keeping_cursors_while_remote_and_filter_stay(
    store: ChannelStore,
) -> None:
    first = await store.configure(Channel.declare(URL, name="peer", token="one"))
    assert first.token == "one" and first.status == "PENDING"
    await store.advance_pull("peer", Position(9, 9), 3, "remote-1")
    await store.advance_push("peer", Position(8, 8), 2)

    again = await store.configure(Channel.declare(URL, name="peer", token="two"))
    assert again.token == "two"
    assert (again.pull, again.push, again.remote_id) == (Position(9, 9), Position(8, 8), "remote-1")
    assert (again.pulled, again.pushed) == (3, 2)

    # Another filter: what it now covers was never exchanged, from the start.
    narrowed = await store.configure(
        Channel.declare(URL, name="peer", token="two", document_type="powerhouse/todo")
    )
    assert (narrowed.pull, narrowed.push, narrowed.remote_id) == (
        Position(),
        Position(),
        "remote-1",
    )
    await store.advance_pull("peer", Position(9, 9), 1, "remote-1")
    moved = await store.configure(
        Channel.declare("http://elsewhere:1", name="peer", document_type="powerhouse/todo")
    )
    assert (moved.pull, moved.remote_id, moved.token) == (Position(), None, None)
    assert [c.name for c in await store.list()] == ["peer"]


def test_default_names_come_from_host_and_port() -> None:
    assert default_name("http://127.0.0.1:8080/") == "127.0.0.1-8080"
    assert default_name("https://reactor.example.com/api") == "reactor.example.com"
    assert default_name("http://[::1]:9000") == "1-9000"
    assert Channel.declare("http://peer.example:80", name="mine").name == "mine"
    with pytest.raises(ValidationError) as caught:
        Channel.declare("mailto:someone@example.com")
    assert caught.value.field == "url"


def test_the_builder_refuses_a_bad_channel_naming_the_field() -> None:
    builder = ReactorBuilder().with_sync(URL, name="peer")
    for kwargs, field in (
        ({"url": "ftp://host"}, "url"),
        ({"url": URL, "name": "peer"}, "name"),
        ({"url": URL, "name": "x", "document_type": "t", "document_id": "d"}, "document_id"),
    ):
        with pytest.raises(ValidationError) as caught:
            builder.with_sync(**kwargs)  # type: ignore[arg-type]
        assert caught.value.field == field


async def test_a_worker_stores_its_declared_channels_and_starts_their_workflows(
    module_factory: Callable[..., Awaitable[ReactorModule]],
) -> None:
    first = await module_factory(
        lambda b: b.with_sync(URL, token="one").with_sync(
            "https://far.example", name="far", document_id="doc-1"
        )
    )
    store = first.channel_store
    assert [(c.name, c.url, c.token, c.filter) for c in await store.list()] == [
        ("127.0.0.1-8081", URL, "one", "all"),
        ("far", "https://far.example", None, "document doc-1"),
    ]
    handles = [first.client.get_workflow_handle(workflow_id(n)) for n in ("127.0.0.1-8081", "far")]
    try:
        for handle in handles:
            described = await handle.describe()
            assert described.status == WorkflowExecutionStatus.RUNNING
            assert described.task_queue == first.reactor.config.task_queue
        await store.advance_pull("127.0.0.1-8081", Position(5, 5), 2, "remote-1")

        # Declared again at the next start: the new token, the cursors kept.
        await module_factory(lambda b: b.with_sync(URL, token="two"))
        again = await store.get("127.0.0.1-8081")
        assert again is not None
        assert (again.token, again.pull, again.pulled) == ("two", Position(5, 5), 2)
        assert [c.name for c in await store.list()] == ["127.0.0.1-8081", "far"]
    finally:
        for handle in handles:
            await handle.terminate("test over")
