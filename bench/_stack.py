"""The stack one benchmark run measures, and its command line.

`run_bench(name, main)` brings the stack up (reactor/runtime/stack.py):

- PostgreSQL (pgserver) and the Temporal dev server (headless) in a fresh
  temporary folder, or the services named by REACTOR_DATABASE_URL /
  REACTOR_TEMPORAL_ADDRESS when those are set;
- a fresh database with the migrations applied, and a fresh task queue;
- one reactor worker as a separate process (`python worker.py`, from this
  tree), whose resident memory (children included) is sampled every 50 ms
  and whose CPU, with the servers', is metered (bench/_metering.py);
- a Reactor built with ReactorBuilder on that database and task queue.

Then it runs `main(stack)` and stops everything, also on Ctrl-C. Set
BENCH_KEEP_STATE=1 to keep the temporary folder (worker log, PostgreSQL and
Temporal state), and BENCH_PROFILE_WORKER=/path/stacks.txt to record the
worker with py-spy (collapsed stacks) for the whole run, at
BENCH_PROFILE_RATE samples/s (100), with BENCH_PROFILE_ARGS added to py-spy's
command line. `--gil` there keeps only samples that hold the GIL: py-spy
counts a thread that is runnable but not running (preempted after a send
that woke PostgreSQL, or waiting to take the GIL back) as busy, and such
samples then pile up on `_SelectorSocketTransport.write`.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _metering import CpuMeter, RssSampler, background_load, tree_rss  # noqa: E402
from _results import log, note_background  # noqa: E402

from reactor.api.builder import ReactorBuilder  # noqa: E402
from reactor.api.reactor import Reactor  # noqa: E402
from reactor.models import BUILTIN_MODELS  # noqa: E402
from reactor.runtime import stack as services  # noqa: E402
from reactor.runtime.stack import EmbeddedStack  # noqa: E402

T = TypeVar("T")

# The code a worker process imports, byte-compiled before it starts: the
# workflow sandbox re-imports workflow modules for every workflow instance,
# and with PYTHONDONTWRITEBYTECODE=1 and no .pyc it would compile them from
# source each time.
CODE = ("reactor", "workflows", "activities")
WORKER_READY_S = 60.0


@dataclass
class BenchStack:
    name: str
    folder: Path
    server_url: str  # the PostgreSQL server's maintenance database
    database_url: str  # the fresh database of this run
    temporal_address: str
    task_queue: str
    reactor: Reactor
    worker: subprocess.Popen[bytes] | None
    worker_log: Path
    rss: RssSampler | None
    cpu: CpuMeter
    embedded_postgres: bool
    embedded_temporal: bool
    worker_idle_rss: int = 0

    async def new_reactor(self) -> Reactor:
        """Another Reactor (new pool, new Temporal client) on the same stack."""
        return await build_reactor(self.database_url, self.temporal_address, self.task_queue)

    @property
    def temporal_label(self) -> str:
        return "embedded dev server" if self.embedded_temporal else self.temporal_address


async def build_reactor(
    database_url: str, temporal_address: str, task_queue: str, payload_key: str | None = None
) -> Reactor:
    return await (
        ReactorBuilder()
        .with_document_models(BUILTIN_MODELS)
        .with_database(database_url)
        .with_temporal(temporal_address, task_queue=task_queue, payload_key=payload_key)
        .with_migration_strategy("none")
        .build()
    )


def compile_code() -> None:
    for name in CODE:
        compileall.compile_dir(ROOT / name, quiet=1)


def spawn_worker(
    folder: Path,
    database_url: str,
    address: str,
    task_queue: str,
    log_path: Path,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """A worker process of this tree, in its own session (a Ctrl-C in the
    terminal reaches only the benchmark, which stops it)."""
    env = services.worker_env(
        database_url, address, task_queue, home=folder / "home", extra=extra_env
    )
    return services.spawn_worker(env, log_path, cwd=folder, own_session=True)


async def wait_ready(proc: subprocess.Popen[bytes], log_path: Path) -> None:
    await services.wait_polling(log_path, WORKER_READY_S, proc)


async def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    await asyncio.to_thread(services.stop_process, proc)


def _start_profiler(pid: int, output: str) -> subprocess.Popen[bytes] | None:
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        found = shutil.which("py-spy")
        if found is None:
            log.print("[yellow]BENCH_PROFILE_WORKER set but py-spy is not installed[/]")
            return None
        py_spy = Path(found)
    log.print(f"profiling worker {pid} with py-spy -> {output}")
    return subprocess.Popen(
        [
            str(py_spy),
            "record",
            "--pid",
            str(pid),
            "--rate",
            os.environ.get("BENCH_PROFILE_RATE", "100"),
            "--format",
            "raw",
            "--output",
            output,
            "--nonblocking",
            *os.environ.get("BENCH_PROFILE_ARGS", "").split(),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


async def _session(
    name: str, stack: EmbeddedStack, main: Callable[[BenchStack], Awaitable[T]]
) -> T:
    folder = stack.folder
    address = stack.temporal_address
    database_url = await stack.new_database(f"bench_{name}_")
    try:
        task_queue = f"bench-{name}-{uuid.uuid4().hex[:8]}"
        worker_log = folder / "worker.log"
        worker = spawn_worker(folder, database_url, address, task_queue, worker_log)
        rss = RssSampler(worker.pid).start()
        profiler: subprocess.Popen[bytes] | None = None
        reactor: Reactor | None = None
        pids = {"postgres": stack.postgres_pid, "temporal": stack.temporal_pid}
        try:
            reactor = await build_reactor(database_url, address, task_queue)
            await wait_ready(worker, worker_log)
            bench = BenchStack(
                name=name,
                folder=folder,
                server_url=stack.server_url,
                database_url=database_url,
                temporal_address=address,
                task_queue=task_queue,
                reactor=reactor,
                worker=worker,
                worker_log=worker_log,
                rss=rss,
                cpu=CpuMeter(
                    {
                        "worker": worker.pid,
                        **{k: pid for k, pid in pids.items() if pid is not None},
                        "bench": os.getpid(),
                    }
                ),
                embedded_postgres=stack.postgres is not None,
                embedded_temporal=stack.temporal is not None,
                worker_idle_rss=tree_rss(worker.pid),
            )
            if os.environ.get("BENCH_PROFILE_WORKER"):
                profiler = _start_profiler(worker.pid, os.environ["BENCH_PROFILE_WORKER"])
            return await main(bench)
        finally:
            if profiler is not None:
                await asyncio.to_thread(services.stop_process, profiler, signal.SIGINT, 60.0)
            if reactor is not None:
                await reactor.close()
            await stop_worker(worker)
            rss.stop()
    finally:
        if stack.postgres is None and not os.environ.get("BENCH_KEEP_STATE"):
            await stack.drop_database(database_url)


def run_bench(name: str, main: Callable[[BenchStack], Awaitable[T]]) -> T:
    """Starts the stack, runs `main(stack)`, stops everything (also on Ctrl-C)."""
    folder = Path(tempfile.mkdtemp(prefix=f"rxbench-{name}-"))
    stack = EmbeddedStack.from_env(folder)
    try:
        compile_code()
        note_background(background_load())
        if stack.postgres is not None:
            log.print("starting PostgreSQL (pgserver)…")
            stack.start_postgres()
        if stack.temporal is not None:
            log.print("starting the Temporal dev server (headless)…")
            stack.start_temporal()
        return asyncio.run(_session(name, stack, main))
    finally:
        stack.stop()
        if os.environ.get("BENCH_KEEP_STATE"):
            log.print(f"state kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def parse_args(
    description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", action="store_true", help="end with one JSON line of results")
    if extra is not None:
        extra(parser)
    return parser.parse_args()


def main_guard(fn: Callable[[], Any]) -> None:
    """Runs a benchmark's main; Ctrl-C exits 130 after the stack stopped."""
    try:
        fn()
    except KeyboardInterrupt:
        log.print("[red]interrupted; the stack was stopped[/]")
        sys.exit(130)
