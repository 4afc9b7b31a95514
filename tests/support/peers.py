"""Reactors that sync with each other in one test: each with its own
database, task queue, in-process worker and HTTP API, on the test's stack."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from reactor.api.builder import ReactorBuilder
from reactor.api.http import create_app
from reactor.api.http.server import ApiServer
from reactor.api.module import ReactorModule
from reactor.api.reactor import Reactor
from reactor.domain.workflow_io import BatchConfig
from reactor.models import BUILTIN_MODELS
from reactor.runtime.stack import create_database
from reactor.storage.identity import reactor_id
from reactor.storage.operation_store import Position
from reactor.storage.sync_source import SyncSource


@dataclass
class Peer:
    name: str
    module: ReactorModule
    reactor: Reactor
    database_url: str
    task_queue: str
    url: str
    reactor_id: str
    worker: Any

    async def operations(self, document_id: str) -> dict[str, list[dict[str, Any]]]:
        """Per scope: the operations' (id, action id, index, skip, hash)."""
        out: dict[str, list[dict[str, Any]]] = {}
        async with self.module.database.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT scope, id, idx, skip, hash, action->>'id' AS action_id, "
                "action->>'type' AS type FROM reactor_operations WHERE document_id = $1 "
                "ORDER BY scope, idx",
                document_id,
            )
        for r in rows:
            out.setdefault(r["scope"], []).append(dict(r))
        return out


@asynccontextmanager
async def open_peers(
    stack: Any,
    *names: str,
    configure: Callable[[ReactorBuilder], ReactorBuilder] | None = None,
) -> AsyncIterator[list[Peer]]:
    async with AsyncExitStack() as exits:
        peers = []
        for name in names:
            database_url = await create_database(stack.database_url, "t_")
            task_queue = f"tq-{name}-{uuid.uuid4().hex[:8]}"
            builder = (
                ReactorBuilder()
                .with_document_models(BUILTIN_MODELS)
                .with_database(database_url)
                .with_temporal(stack.temporal_address, task_queue=task_queue)
                .with_batch_config(BatchConfig(heartbeat_timeout_s=5))
            )
            if configure is not None:
                builder = configure(builder)
            module = await builder.build_module()
            exits.push_async_callback(module.close)
            worker = module.create_worker()
            await worker.__aenter__()
            exits.push_async_callback(worker.__aexit__, None, None, None)
            server = ApiServer(create_app(module.reactor))
            await server.start()
            exits.push_async_callback(server.stop)
            peers.append(
                Peer(
                    name,
                    module,
                    module.reactor,
                    database_url,
                    task_queue,
                    server.url,
                    await reactor_id(module.database),
                    worker,
                )
            )
        yield peers


async def exchange(sender: Peer, receiver: Peer, after: Position) -> tuple[Position, int]:
    """One direction of a sync round without HTTP: `sender`'s log after
    `after` (leaving out what `receiver` sent it), loaded into `receiver`.
    Every load job must succeed. Returns the new position and the number of
    operations sent."""
    source = SyncSource(sender.module.database)
    sent = 0
    while True:
        page = await source.read_page(after, 500, peer=receiver.reactor_id)
        if page.loads:
            result = await receiver.reactor.load_batch(page.loads, origin=sender.reactor_id)
            for info in result.jobs.values():
                done = await receiver.reactor.wait_for_job(info.id, timeout=60)
                assert done.status == "READ_READY", done
            sent += page.served
        after = page.next
        if not page.more:
            return after, sent
