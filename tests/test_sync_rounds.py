"""A sync channel's workflow with its real rounds, between reactors that
each have their own database, task queue, worker and HTTP API: what is
written on either side reaches the other through one channel (a local
commit or the remote's event stream ending its wait), and a channel
whose remote is down fails its rounds visibly (row, status query, events)
and backs off."""

from __future__ import annotations

from typing import Any

from reactor.application.events import ReactorEventTypes, SyncEvent
from reactor.domain.channel_status import ChannelPhase, ChannelState, SyncInput
from reactor.runtime.embedded import free_port
from reactor.storage.sync_channels import Channel
from tests.conftest import Stack, wait_until
from tests.support.peers import Peer, open_peers
from workflows.sync import SyncWorkflow, channel_workflow_id, start_channel

TODO = "powerhouse/todo-list"


def add(item: str) -> dict[str, Any]:
    return {"type": "ADD_TODO_ITEM", "input": {"id": item, "text": item}}


async def written(peer: Peer, *items: str) -> str:
    info = await peer.reactor.create(TODO)
    assert (await peer.reactor.wait_for_job(info.id)).status == "READ_READY"
    for item in items:
        job = await peer.reactor.execute(info.document_id, "main", [add(item)])
        assert (await peer.reactor.wait_for_job(job.id)).status == "READ_READY"
    return info.document_id


def recorded(peer: Peer) -> list[tuple[str, SyncEvent]]:
    seen: list[tuple[str, SyncEvent]] = []

    def record(event_type: str, event: SyncEvent) -> None:
        seen.append((event_type, event))

    for kind in (
        ReactorEventTypes.SYNC_PENDING,
        ReactorEventTypes.SYNC_SUCCEEDED,
        ReactorEventTypes.SYNC_FAILED,
    ):
        peer.module.event_bus.subscribe(kind, record)
    return seen


async def test_writes_on_either_side_reach_the_other_through_one_channel(stack: Stack) -> None:
    async with open_peers(stack, "a", "b") as (a, b):
        events = recorded(a)
        await a.module.channel_store.add(Channel.declare(b.url, name="to-b"))
        # No poll within the test: only the wakes can move what follows.
        handle = await a.module.client.start_workflow(
            SyncWorkflow.run,
            SyncInput(name="to-b", poll_interval_s=3600),
            id=channel_workflow_id("to-b"),
            task_queue=a.task_queue,
        )

        async def waiting() -> bool:
            return (await handle.query(SyncWorkflow.status)).phase == ChannelPhase.WAITING

        # Written on A while the channel waits: the commit wakes it, it pushes.
        await wait_until(waiting, 60, "the channel to wait")
        doc_a = await written(a, "x", "y")

        async def on_b() -> bool:
            return await b.operations(doc_a) == await a.operations(doc_a)

        await wait_until(on_b, 60, "A's document on B")

        # Written on B: B's event stream wakes A's channel, which pulls it.
        await wait_until(waiting, 60, "the channel to wait again")
        doc_b = await written(b, "z")

        async def on_a() -> bool:
            return await a.operations(doc_b) == await b.operations(doc_b)

        await wait_until(on_a, 60, "B's document on A")
        ops_a = sum(len(lane) for lane in (await a.operations(doc_a)).values())
        ops_b = sum(len(lane) for lane in (await b.operations(doc_b)).values())

        async def round_ended() -> bool:
            status = await handle.query(SyncWorkflow.status)
            return status.pulled >= ops_b and status.state == ChannelState.SUCCEEDED

        await wait_until(round_ended, 60, "the round that pulled B's document to end")
        status = await handle.query(SyncWorkflow.status)
        channel = await a.module.channel_store.get("to-b")
        await handle.terminate("test over")
        document = await b.reactor.get(doc_a)
        assert [item["id"] for item in document.state["global"]["items"]] == ["x", "y"]
    assert channel is not None
    assert channel.remote_id == b.reactor_id
    assert channel.status == "SUCCEEDED"
    # Each operation crossed once: B's were not sent back to it.
    assert (channel.pushed, channel.pulled) == (ops_a, ops_b)
    assert status.state == ChannelState.SUCCEEDED
    assert (status.pushed, status.pulled) == (ops_a, ops_b)
    kinds = [kind for kind, _ in events]
    assert ReactorEventTypes.SYNC_PENDING in kinds
    assert ReactorEventTypes.SYNC_SUCCEEDED in kinds
    assert ReactorEventTypes.SYNC_FAILED not in kinds


async def test_a_channel_to_a_remote_that_is_down_fails_visibly_and_backs_off(
    stack: Stack,
) -> None:
    async with open_peers(stack, "a") as (a,):
        events = recorded(a)
        url = f"http://127.0.0.1:{free_port()}"
        await a.module.channel_store.add(Channel.declare(url, name="down"))
        handle = await start_channel(a.module.client, "down", a.task_queue)

        async def failed_twice() -> bool:
            return (await handle.query(SyncWorkflow.status)).attempts >= 2

        await wait_until(failed_twice, 60, "two failed rounds")
        status = await handle.query(SyncWorkflow.status)
        channel = await a.module.channel_store.get("down")
        await handle.terminate("test over")
    assert status.state == ChannelState.FAILED
    assert status.last_error is not None and "RemoteUnavailableError" in status.last_error
    assert status.backoff_s >= 2.0  # doubled after the second failure
    assert channel is not None
    assert channel.status == "FAILED"
    assert channel.attempts >= 2
    assert channel.last_error is not None and "RemoteUnavailableError" in channel.last_error
    failures = [e for k, e in events if k == ReactorEventTypes.SYNC_FAILED]
    assert len(failures) >= 2
    assert all(e.channel == "down" and e.error for e in failures)
