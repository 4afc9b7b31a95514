"""The second reactor of bench/sync.py, the channel between the two, and
the writes both sides get.

Reactor B is `reactor serve` (its HTTP API and its worker in one process)
on a database of its own, next to the bench stack's: the same PostgreSQL
server and Temporal dev server, a task queue of its own. The bench process
holds a Reactor on B's database too, to write on B and to watch B's change
feed. The channel is stored on A and run by A's worker (`sync-<name>`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from _metering import RssSampler
from _serve import reactor_serve
from _stack import BenchStack, build_reactor

from reactor.api.reactor import Reactor
from reactor.domain.jobs import JobStatus
from reactor.runtime import stack as services
from reactor.storage.sync_channels import Channel, PostgresChannelStore
from workflows.sync import channel_workflow_id, start_channel

TODO = "powerhouse/todo-list"
OPS_PER_JOB = 50  # actions per job when writing many operations
WRITE_BATCH_JOBS = 100  # jobs per batch for the same

Job = dict[str, Any]


@dataclass
class Remote:
    """Reactor B."""

    url: str
    database_url: str
    task_queue: str
    pid: int
    reactor: Reactor
    rss: RssSampler


@asynccontextmanager
async def served_peer(stack: BenchStack) -> AsyncIterator[Remote]:
    database_url = await services.create_database(stack.server_url, "bench_sync_b_")
    try:
        async with reactor_serve(stack, database_url, "b") as served:
            reactor = await build_reactor(database_url, stack.temporal_address, served.task_queue)
            rss = RssSampler(served.pid).start()
            try:
                yield Remote(served.url, database_url, served.task_queue, served.pid, reactor, rss)
            finally:
                rss.stop()
                await reactor.close()
    finally:
        # An embedded server goes with its folder; dropping the database
        # while this process still runs would only make its listeners retry.
        if not stack.embedded_postgres:
            await services.drop_database(stack.server_url, database_url)


class Link:
    """The channel on A to B: stored at its first start; stopped by
    terminating its workflow (its cursors stay in its row)."""

    def __init__(self, stack: BenchStack, remote: Remote):
        self.stack = stack
        self.remote = remote
        self.name = f"bench-{stack.task_queue}"
        self.store = PostgresChannelStore(stack.reactor.db)

    async def start(self) -> None:
        if await self.store.get(self.name) is None:
            await self.store.add(Channel.declare(self.remote.url, name=self.name))
        await start_channel(self.stack.reactor.client, self.name, self.stack.task_queue)

    async def stop(self) -> None:
        handle = self.stack.reactor.client.get_workflow_handle(channel_workflow_id(self.name))
        await handle.terminate("the benchmark's phase ended")


def add_item(item_id: str, at: datetime | None = None) -> dict[str, Any]:
    action: dict[str, Any] = {
        "type": "ADD_TODO_ITEM",
        "id": item_id,
        "input": {"id": item_id, "text": f"item {item_id}"},
    }
    if at is not None:
        action["timestamp"] = at.isoformat()
    return action


def write_jobs(
    docs: Sequence[str], ops: int, stamp: Callable[[int], datetime] | None = None
) -> list[list[Job]]:
    """Batches: the documents' creates, then `ops` items on each (item k of
    document d is `d-k`, stamped `stamp(k)` when given), in jobs of
    OPS_PER_JOB actions, job k of every document before job k + 1 of any."""
    creates: list[Job] = [
        {
            "key": f"{doc}-create",
            "document_id": doc,
            "scope": "document",
            "actions": [{"type": "CREATE_DOCUMENT", "input": {"document_type": TODO}}],
        }
        for doc in docs
    ]
    jobs: list[Job] = [
        {
            "key": f"{doc}-{start}",
            "document_id": doc,
            "actions": [
                add_item(f"{doc}-{k}", stamp(k) if stamp is not None else None)
                for k in range(start, min(ops, start + OPS_PER_JOB))
            ],
        }
        for start in range(0, ops, OPS_PER_JOB)
        for doc in docs
    ]
    return [creates] + [
        jobs[i : i + WRITE_BATCH_JOBS] for i in range(0, len(jobs), WRITE_BATCH_JOBS)
    ]


async def run_batches(reactor: Reactor, batches: list[list[Job]], what: str) -> None:
    """One batch after another (a document's jobs in order), each to READ_READY."""
    for batch in batches:
        result = await reactor.execute_batch({"jobs": batch})
        infos = await reactor.wait_for_batch(result.batch_id)
        failed = [j for j in infos if j.status is not JobStatus.READ_READY]
        if failed:
            raise RuntimeError(f"{what}: {len(failed)} of {len(infos)} jobs failed: {failed[:2]}")
