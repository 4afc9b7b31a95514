"""Real services for the suite: one embedded PostgreSQL and one Temporal dev
server per session (started and stopped here), and a fresh database and task
queue per test so tests cannot see each other's documents or workflows."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reactor.api.builder import ReactorBuilder
from reactor.api.module import ReactorModule
from reactor.api.reactor import Reactor
from reactor.runtime import stack as services
from reactor.runtime.embedded import free_port as free_port
from reactor.runtime.stack import EmbeddedStack, create_database
from reactor.runtime.stack import with_database as with_database
from reactor.storage.database import Database
from tests.support.verify_after import verify_after as verify_after
from tests.support.workers import suite_builder, worker_module

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Stack:
    database_url: str  # the server's maintenance database
    temporal_address: str
    folder: Path


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    folder = Path(tempfile.mkdtemp(prefix="rxt"))
    # Always embedded, on a port of its own: a `reactor dev` may hold 7233.
    try:
        with EmbeddedStack(folder, temporal_port=free_port()) as started:
            yield Stack(started.server_url, started.temporal_address, folder)
    finally:
        if not os.environ.get("REACTOR_KEEP_TEST_STATE"):
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def database_url(stack: Stack) -> str:
    """A fresh, migrated database for this test."""
    return await create_database(stack.database_url, "t_")


@pytest.fixture
def task_queue() -> str:
    return "tq-" + uuid.uuid4().hex[:10]


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.connect(database_url)
    yield database
    await database.close()


@pytest.fixture
async def reactor(stack: Stack, database_url: str, task_queue: str) -> AsyncIterator[Reactor]:
    """A reactor with no worker: tests add one with `in_process_worker`."""
    r = await suite_builder(database_url, stack.temporal_address, task_queue).build()
    yield r
    await r.close()


@pytest.fixture
async def worker(stack: Stack, database_url: str, task_queue: str) -> AsyncIterator[None]:
    """An in-process worker on the test's task queue."""
    module = await worker_module(database_url, stack.temporal_address, task_queue)
    w = module.create_worker()
    task = asyncio.create_task(w.run())
    yield
    await w.shutdown()
    await asyncio.gather(task, return_exceptions=True)
    await module.close()


def worker_env(stack: Stack, database_url: str, task_queue: str) -> dict[str, str]:
    """Environment for a worker subprocess (`python worker.py`) joining the test."""
    return services.worker_env(
        database_url, stack.temporal_address, task_queue, home=stack.folder / "home"
    )


def spawn_worker(
    stack: Stack,
    database_url: str,
    task_queue: str,
    log: Path,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """A real worker process (`python worker.py`), logging to `log`."""
    env = {**worker_env(stack, database_url, task_queue), **(extra_env or {})}
    return services.spawn_worker(env, log, cwd=stack.folder)


async def wait_polling(
    log: Path, timeout: float = 60, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Until the worker logging to `log` polls its task queue (its start-up,
    imports included, takes seconds on a fresh clone); with `proc`, its
    exit first is an error quoting the log."""
    await services.wait_polling(log, timeout, proc)


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def module_factory(
    stack: Stack, database_url: str, task_queue: str
) -> AsyncIterator[Callable[..., Awaitable[ReactorModule]]]:
    """Builds ReactorModules (each with an in-process worker) for this test.
    `configure(builder)` may add read models, verifiers, etc."""
    opened: list[tuple[ReactorModule, Any]] = []

    async def make(
        configure: Callable[[ReactorBuilder], ReactorBuilder] | None = None, *, worker: bool = True
    ) -> ReactorModule:
        builder = suite_builder(database_url, stack.temporal_address, task_queue)
        module = await (configure(builder) if configure else builder).build_module()
        w = module.create_worker() if worker else None
        if w is not None:
            await w.__aenter__()
        opened.append((module, w))
        return module

    yield make
    for module, w in reversed(opened):
        if w is not None:
            await w.__aexit__(None, None, None)
        await module.close()
