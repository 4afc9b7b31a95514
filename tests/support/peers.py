"""Reactors that sync with each other in one test: each with its own
database, task queue, in-process worker and HTTP API, on the test's stack."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from reactor.api.builder import ReactorBuilder
from reactor.api.http import create_app
from reactor.api.http.server import ApiServer
from reactor.api.module import ReactorModule
from reactor.api.reactor import Reactor
from reactor.runtime import stack as services
from reactor.runtime.stack import create_database
from reactor.storage.identity import reactor_id
from reactor.storage.operation_store import Position
from reactor.storage.sync_source import SyncSource
from tests.support.workers import suite_builder


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
    server: ApiServer

    async def drop_link(self) -> None:
        """Stops this peer's HTTP API: the other side cannot reach it."""
        await self.server.stop()

    async def restore_link(self) -> None:
        """Serves the HTTP API again, on the same address."""
        port = int(self.url.rsplit(":", 1)[1])
        self.server = ApiServer(create_app(self.reactor), port=port)
        await self.server.start()

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
    processes: Collection[str] = (),
) -> AsyncIterator[list[Peer]]:
    """Peers named in `processes` run their worker as a process of its own
    (`python worker.py`: `Peer.worker` is its Popen, `respawn` replaces it);
    the others in this process."""
    async with AsyncExitStack() as exits:
        peers = []
        for name in names:
            database_url = await create_database(stack.database_url, "t_")
            task_queue = f"tq-{name}-{uuid.uuid4().hex[:8]}"
            builder = suite_builder(database_url, stack.temporal_address, task_queue)
            if configure is not None:
                builder = configure(builder)
            module = await builder.build_module()
            exits.push_async_callback(module.close)
            worker: Any
            if name in processes:
                worker = await _spawn(stack, database_url, task_queue, name)
            else:
                worker = module.create_worker()
                await worker.__aenter__()
                exits.push_async_callback(worker.__aexit__, None, None, None)
            server = ApiServer(create_app(module.reactor))
            await server.start()
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
                    server,
                )
            )
            exits.push_async_callback(_stop_server, peers[-1])
            if name in processes:
                exits.callback(_stop_worker, peers[-1])
        yield peers


async def _spawn(
    stack: Any, database_url: str, task_queue: str, name: str
) -> subprocess.Popen[bytes]:
    env = services.worker_env(
        database_url, stack.temporal_address, task_queue, home=stack.folder / "home"
    )
    log = stack.folder / f"worker-{task_queue}.log"
    proc = services.spawn_worker(env, log, cwd=stack.folder)
    await services.wait_polling(log, 120, proc)
    return proc


async def _stop_server(peer: Peer) -> None:
    await peer.server.stop()


def _stop_worker(peer: Peer) -> None:
    _stop(peer.worker)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(30)


async def respawn(stack: Any, peer: Peer) -> None:
    """A new worker process for `peer`, after its last was killed."""
    _stop(peer.worker)
    peer.worker = await _spawn(stack, peer.database_url, peer.task_queue, peer.name)


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


async def exchange_both_ways(
    a: Peer, b: Peer, after_ab: Position, after_ba: Position | None = None, rounds: int = 2
) -> None:
    """`rounds` sync rounds without HTTP, each `a` to `b` then `b` to `a`,
    from the positions given: the second round carries a merge's copies
    back to the side that sent the first."""
    after_ba = after_ba or Position()
    for _ in range(rounds):
        after_ab, _ = await exchange(a, b, after_ab)
        after_ba, _ = await exchange(b, a, after_ba)
