"""Two reactors syncing both ways through a channel, each with its own
database, task queue, worker and HTTP API: after concurrent writes on the
same documents (undo included), both hold the same operations and the same
state with equal hashes, and no write is missing. Also with one side's
worker SIGKILLed mid-sync, and with the link dropped mid-sync."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from typing import Any

from reactor.domain.ids import uuid4_text
from reactor.storage.sync_channels import Channel
from tests.conftest import Stack, wait_until
from tests.support.peers import Peer, open_peers, respawn
from workflows.sync import channel_workflow_id, start_channel

TODO = "powerhouse/todo-list"


def channel_of(a: Peer) -> str:
    """The channel's name: its workflow's id is `sync-<name>`, unique in the
    namespace that every test's reactors share."""
    return f"to-b-{a.task_queue}"


async def connect(a: Peer, b: Peer) -> None:
    """A channel on `a` to `b`: it pulls b's operations and pushes a's."""
    await a.module.channel_store.configure(Channel.declare(b.url, name=channel_of(a)))
    await start_channel(a.module.client, channel_of(a), a.task_queue)


async def wake(a: Peer) -> None:
    handle = a.module.client.get_workflow_handle(channel_workflow_id(channel_of(a)))
    await handle.signal("wake")


async def create_documents(peer: Peer, count: int) -> list[str]:
    docs = []
    for _ in range(count):
        info = await peer.reactor.create(TODO)
        assert (await peer.reactor.wait_for_job(info.id)).status == "READ_READY"
        docs.append(info.document_id)
    return docs


async def held(peer: Peer, doc: str) -> set[str]:
    return {op["action_id"] for ops in (await peer.operations(doc)).values() for op in ops}


async def snapshot(peer: Peer, doc: str) -> tuple[Any, dict[str, str]]:
    async with peer.module.database.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT scope, hash FROM reactor_document_states WHERE document_id = $1", doc
        )
    document = await peer.reactor.get(doc)
    return document.state["global"], {r["scope"]: r["hash"] for r in rows}


class Writers:
    """Concurrent writers on both sides; remembers every write that succeeded."""

    def __init__(self, seed: int):
        self.random = random.Random(seed)
        self.written: set[str] = set()
        self.undone = 0
        self.failed_undos = 0

    async def write(self, peer: Peer, docs: list[str], count: int, pause: float = 0.0) -> None:
        for n in range(count):
            doc = self.random.choice(docs)
            action_id = uuid4_text()
            if n % 5 == 4:
                action: dict[str, Any] = {"type": "UNDO", "id": action_id}
            else:
                text = f"{peer.name}-{n}"
                action = {
                    "type": "ADD_TODO_ITEM",
                    "input": {"id": action_id, "text": text},
                    "id": action_id,
                }
            info = await peer.reactor.execute(doc, "main", [action])
            done = await peer.reactor.wait_for_job(info.id, timeout=120)
            if done.status == "READ_READY":
                self.written.add(action_id)
                self.undone += action["type"] == "UNDO"
            else:
                # Only an UNDO may fail: nothing left to undo on that side.
                assert action["type"] == "UNDO" and done.error is not None, done
                assert done.error.type == "NothingToUndo", done
                self.failed_undos += 1
            if pause:
                await asyncio.sleep(pause)


async def converge(a: Peer, b: Peer, docs: list[str], timeout: float = 240) -> None:
    """Until every document has the same state, hashes and operations on
    both sides (the channel keeps running meanwhile)."""

    async def same() -> bool:
        for doc in docs:
            try:
                if await snapshot(a, doc) != await snapshot(b, doc):
                    return False
            except Exception:  # not there yet on one side
                return False
            if await held(a, doc) != await held(b, doc):
                return False
        return True

    await wait_until(same, timeout, "both reactors to hold the same documents")


async def check(a: Peer, b: Peer, docs: list[str], writers: Writers) -> dict[str, int]:
    """The convergence assertions; counts for the report."""
    counts = {"documents": len(docs), "writes": len(writers.written), "merges": 0, "ops_a": 0}
    everything_a: set[str] = set()
    everything_b: set[str] = set()
    for doc in docs:
        state_a, heads_a = await snapshot(a, doc)
        state_b, heads_b = await snapshot(b, doc)
        assert state_a == state_b
        assert heads_a == heads_b
        held_a, held_b = await held(a, doc), await held(b, doc)
        assert held_a == held_b
        everything_a |= held_a
        everything_b |= held_b
        assert (await a.reactor.verify(doc)).ok
        assert (await b.reactor.verify(doc)).ok
        for side in (a, b):
            for op in (await side.operations(doc)).get("global", []):
                counts["merges"] += op["skip"] > 0 and op["type"] != "NOOP"
        counts["ops_a"] += sum(len(ops) for ops in (await a.operations(doc)).values())
    missing = writers.written - everything_a, writers.written - everything_b
    assert missing == (set(), set()), f"writes missing on a / b: {missing}"
    return counts


async def run_concurrently(*jobs: Awaitable[None]) -> None:
    await asyncio.gather(*jobs)


async def test_concurrent_writes_with_undo_converge(stack: Stack) -> None:
    async with open_peers(stack, "a", "b") as (a, b):
        docs = await create_documents(a, 2) + await create_documents(b, 2)
        await connect(a, b)
        await converge(a, b, docs)
        writers = Writers(seed=27)
        await run_concurrently(
            writers.write(a, docs, 20),
            writers.write(a, docs, 20),
            writers.write(b, docs, 20),
            writers.write(b, docs, 20),
        )
        await converge(a, b, docs)
        counts = await check(a, b, docs, writers)
        assert writers.undone > 0
        assert counts["merges"] > 0, "concurrent writes on one document make a merge"
        print(f"\nconverged: {counts}, undos {writers.undone}")


async def test_convergence_survives_a_worker_killed_mid_sync(stack: Stack) -> None:
    async with open_peers(stack, "a", "b", processes={"a"}) as (a, b):
        docs = await create_documents(b, 3)
        await connect(a, b)
        await converge(a, b, docs)
        writers = Writers(seed=9)

        async def kill_mid_sync() -> None:
            await asyncio.sleep(1.0)  # writes are flowing both ways by now
            a.worker.kill()  # SIGKILL: no drain, the round in flight is lost
            a.worker.wait()
            await asyncio.sleep(0.5)
            await respawn(stack, a)

        await run_concurrently(
            writers.write(a, docs, 25),
            writers.write(b, docs, 25),
            writers.write(b, docs, 25, pause=0.02),
            kill_mid_sync(),
        )
        await converge(a, b, docs)
        counts = await check(a, b, docs, writers)
        print(f"\nconverged after SIGKILL: {counts}")


async def test_convergence_survives_the_link_dropped_mid_sync(stack: Stack) -> None:
    async with open_peers(stack, "a", "b") as (a, b):
        docs = await create_documents(a, 3)
        await connect(a, b)
        await converge(a, b, docs)
        writers = Writers(seed=5)
        failures: list[str] = []

        async def drop_link() -> None:
            await asyncio.sleep(0.8)  # writes are flowing both ways by now
            await b.drop_link()  # a's channel now fails its rounds and backs off
            await wait_until(lambda: channel_failed(a, failures), 60, "a failed round")
            await b.restore_link()

        await run_concurrently(
            writers.write(a, docs, 25),
            writers.write(b, docs, 25),
            drop_link(),
        )
        await wake(a)  # skip the rest of the backoff
        await converge(a, b, docs)
        counts = await check(a, b, docs, writers)
        assert failures, "the channel saw the link down"
        print(f"\nconverged after the link dropped: {counts}, failure: {failures[0][:120]}")


async def channel_failed(a: Peer, failures: list[str]) -> bool:
    channel = await a.module.channel_store.get(channel_of(a))
    if channel is not None and channel.status == "FAILED" and channel.last_error:
        failures.append(channel.last_error)
        return True
    return False
