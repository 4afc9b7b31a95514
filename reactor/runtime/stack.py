"""The stack a reactor runs on, brought up and down as one: PostgreSQL and the
Temporal dev server (embedded under a folder, or ones already running), fresh
migrated databases on that server, and worker processes joining it.

`reactor dev`, the test suite and the benchmarks all start their services
here, so they agree on how a stack comes up and on a stop that ends within
bounded time whatever the services do."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from reactor.runtime.embedded import EmbeddedPostgres, EmbeddedTemporal, postmaster_in
from reactor.runtime.settings import STACK_VARIABLES, stack_from_env
from reactor.storage.migrate import migrate

# The folder holding reactor/ and worker.py: a worker process runs this code,
# from the tree in a checkout, from site-packages once installed.
SOURCE_ROOT = Path(__file__).resolve().parents[2]
WORKER_SCRIPT = SOURCE_ROOT / "worker.py"
# What a worker logs once it polls its task queue (reactor/runtime/worker.py).
WORKER_POLLING = "worker polling"
# A worker that ignores SIGTERM this long is killed.
WORKER_STOP_S = 30.0


class EmbeddedStack:
    """PostgreSQL and the Temporal dev server under `folder`, each embedded
    unless `database_url` / `temporal_address` name one already running (that
    one is neither started nor stopped here).

    `start()` brings up what is embedded; `stop()` stops it in order, the dev
    server first; `kill()` stops it at once and may be called from any thread,
    also while `stop()` waits. As a context manager, what started is stopped
    even when a start fails half-way."""

    def __init__(
        self,
        folder: Path,
        *,
        database_url: str | None = None,
        temporal_address: str | None = None,
        temporal_port: int | None = None,
        ui: bool = False,
        die_with_parent: bool = False,
    ):
        self.folder = folder
        self.server_url = database_url or ""  # the server's maintenance database
        self.temporal_address = temporal_address or ""
        self.postgres = None if database_url else EmbeddedPostgres(folder / "pg")
        self.temporal = (
            None
            if temporal_address
            else EmbeddedTemporal(
                folder / "temporal", port=temporal_port, ui=ui, die_with_parent=die_with_parent
            )
        )

    @classmethod
    def from_env(
        cls, folder: Path, *, ui: bool = False, die_with_parent: bool = False
    ) -> EmbeddedStack:
        """The services named by REACTOR_DATABASE_URL / REACTOR_TEMPORAL_ADDRESS,
        the others embedded."""
        named = stack_from_env()
        return cls(
            folder,
            database_url=named.get("database_url"),
            temporal_address=named.get("temporal_address"),
            ui=ui,
            die_with_parent=die_with_parent,
        )

    def start_postgres(self) -> str:
        if self.postgres is not None:
            self.server_url = self.postgres.start()
        return self.server_url

    def start_temporal(self) -> str:
        """From a thread that lives as long as the stack when `die_with_parent`:
        the kernel ends the server with the thread that started it."""
        if self.temporal is not None:
            self.temporal_address = self.temporal.start()
        return self.temporal_address

    def start(self) -> EmbeddedStack:
        self.start_postgres()
        self.start_temporal()
        return self

    def stop(self) -> None:
        if self.temporal is not None:
            self.temporal.stop()
        if self.postgres is not None:
            self.postgres.stop()

    def kill(self) -> None:
        if self.temporal is not None:
            self.temporal.kill()
        if self.postgres is not None:
            self.postgres.kill()

    def __enter__(self) -> EmbeddedStack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def ui_url(self) -> str | None:
        return self.temporal.ui_url if self.temporal is not None else None

    @property
    def temporal_pid(self) -> int | None:
        return self.temporal.pid if self.temporal is not None else None

    @property
    def postgres_pid(self) -> int | None:
        """The embedded postmaster's pid (None for a server of one's own)."""
        if self.postgres is None:
            return None
        proc = postmaster_in(self.postgres.folder)
        return proc.pid if proc is not None else None

    async def new_database(self, prefix: str) -> str:
        return await create_database(self.server_url, prefix)

    async def drop_database(self, database_url: str) -> None:
        await drop_database(self.server_url, database_url)


def with_database(url: str, name: str) -> str:
    """`url` with its database replaced by `name`."""
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def create_database(server_url: str, prefix: str) -> str:
    """Creates a database named `prefix` + a random suffix on the server
    `server_url` reaches, applies the migrations, and returns its URL: one
    per test or run, so runs cannot see each other's documents."""
    name = prefix + uuid.uuid4().hex[:12]
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = with_database(server_url, name)
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return url


async def drop_database(server_url: str, database_url: str) -> None:
    """Drops the database of `database_url`, its sessions ended first."""
    name = urlsplit(database_url).path.lstrip("/")
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def worker_env(
    database_url: str,
    temporal_address: str,
    task_queue: str,
    *,
    home: Path,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """This process's environment with the stack's REACTOR_* variables, for a
    worker process (`python worker.py`) running this code."""
    env = dict(os.environ)
    env[STACK_VARIABLES["database_url"]] = database_url
    env[STACK_VARIABLES["temporal_address"]] = temporal_address
    env[STACK_VARIABLES["task_queue"]] = task_queue
    env.update(REACTOR_HOME=str(home), PYTHONPATH=str(SOURCE_ROOT))
    env.update(extra or {})
    return env


def spawn_worker(
    env: dict[str, str], log: Path, *, cwd: Path, own_session: bool = False
) -> subprocess.Popen[bytes]:
    """`python worker.py` with `env`, its output appended to `log`. In its
    own session a Ctrl-C in the terminal reaches only its parent, which
    stops it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "ab")  # noqa: SIM115 - the child owns it
    try:
        return subprocess.Popen(
            [sys.executable, str(WORKER_SCRIPT)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=str(cwd),
            start_new_session=own_session,
        )
    finally:
        out.close()


async def wait_polling(
    log: Path, timeout: float = 60.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Until the worker logging to `log` polls its task queue (its start-up,
    imports included, takes seconds on a fresh clone). With `proc`, a worker
    that exits first is an error quoting its log."""
    deadline = time.monotonic() + timeout
    while True:
        text = await asyncio.to_thread(_read, log)
        if WORKER_POLLING in text:
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}:\n{text[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the worker logging to {log} not polling after {timeout} s")
        await asyncio.sleep(0.02)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def stop_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = WORKER_STOP_S
) -> None:
    """Sends `sig` and waits; a process still running after `timeout` is killed."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
