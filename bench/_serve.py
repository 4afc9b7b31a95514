"""`reactor serve` on the bench's stack, as its own process, for the HTTP
modes: the command users run, with its in-process worker on a task queue of
its own (the bench's worker process keeps the bench's queue), so the batches
it is sent start eagerly on that worker. Clients reach it over loopback."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from _stack import BenchStack

from reactor.runtime import stack as services

READY = "reactor serve: api="
READY_S = 60.0


@dataclass(frozen=True)
class Served:
    url: str
    task_queue: str
    pid: int


@asynccontextmanager
async def reactor_serve(
    stack: BenchStack, database_url: str | None = None, name: str = "http"
) -> AsyncIterator[Served]:
    """`reactor serve --port 0` on the bench's Temporal and its database (or
    `database_url`), on a task queue of its own named `name`, until the
    block ends (SIGTERM: open requests get their grace, then it exits)."""
    task_queue = f"{stack.task_queue}-{name}"
    log_path = stack.folder / f"serve-{name}.log"
    env = services.worker_env(
        database_url or stack.database_url,
        stack.temporal_address,
        task_queue,
        home=stack.folder / "home",
    )
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reactor.cli.main", "serve", "--port", "0"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=str(stack.folder),
            start_new_session=True,  # a Ctrl-C reaches the bench, which stops it
        )
    try:
        url = await _ready_url(proc, log_path)
        yield Served(url=url, task_queue=task_queue, pid=proc.pid)
    finally:
        await asyncio.to_thread(services.stop_process, proc)


async def _ready_url(proc: subprocess.Popen[bytes], log_path: Path) -> str:
    deadline = time.monotonic() + READY_S
    while True:
        text = await asyncio.to_thread(log_path.read_text, errors="replace")
        for line in text.splitlines():
            if line.startswith(READY):
                return line[len(READY) :].split()[0]
        if proc.poll() is not None:
            raise RuntimeError(f"reactor serve exited with {proc.returncode}:\n{text[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"reactor serve not ready after {READY_S} s:\n{text[-3000:]}")
        await asyncio.sleep(0.05)
